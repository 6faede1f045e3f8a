"""First-party integrations, installed as ``eventhub.integrations``."""
