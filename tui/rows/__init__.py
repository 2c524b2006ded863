"""Pure row builders: model objects in, plain `Row`s out, tested without an App."""
