"""First-party workflows, installed as ``eventhub.workflows``."""
