"""streams: Faust agents that sessionize messages into conversations, turns and turn pairs."""
