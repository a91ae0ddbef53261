"""selflearn: mine user rephrases and cross-user variants from assistant logs into weakly labeled NLU data."""

__version__ = "0.1.0"
