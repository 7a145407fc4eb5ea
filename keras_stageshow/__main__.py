from keras_stageshow.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
