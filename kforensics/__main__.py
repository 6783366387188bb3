"""`python -m kforensics`, and the script `spark-submit` runs: the `kforensics` command."""

from kforensics.cli import main

if __name__ == "__main__":
    main(prog_name="kforensics")
