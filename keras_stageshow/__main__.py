"""`python -m keras_stageshow`: the `stageshow` command line."""

from keras_stageshow.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
