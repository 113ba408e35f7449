"""Configuration values every Referral Exchange process shares, kept beneath both the HTTP
plumbing (``rx_web``) and the messaging plumbing (``rx_messaging``) so neither imports the
other: the Kafka client credentials (``rx_config.kafka_auth``)."""
