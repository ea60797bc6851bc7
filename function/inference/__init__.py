"""Stream inference for AWS Lambda: score Kinesis / DynamoDB-stream batches with a
scikit-learn model from a verified model layer."""
