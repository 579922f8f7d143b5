"""Tools for trying and operating the pipeline: traffic simulator, replay, topic tail, brokers to run."""
