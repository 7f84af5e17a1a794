"""The snippets are checked and run by tests/test_typing.py; pytest's doctest collection must not import them."""

collect_ignore = ["accepted.py", "rejected.py"]
