"""The payments domain: payment actions (plain functions), provider adapters and the payments-pool tasks."""
