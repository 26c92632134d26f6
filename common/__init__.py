"""What api, workers and gateway all need: settings, tokens, logging, the HTTP contract, the CLI."""
