"""`python -m common.cli`: how `cfmp up` starts its children with the very same interpreter."""
from common.cli import main

main(prog_name="cfmp")
