// The run's verdict (being written).
