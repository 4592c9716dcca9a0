"""The domain layer: manifest models, frozen result types and the error tree. No I/O."""
