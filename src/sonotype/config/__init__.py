"""The one strict parser that turns plain data (YAML/JSON) into typed config dataclasses."""
