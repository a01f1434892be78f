"""The revisions the tests expect, written out by hand: adding a revision means adding it here."""

FORWARD = ["0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009", "0010", "0011", "0012", "0013", "0014", "0015", "0016", "0017", "0018"]
HEAD = FORWARD[-1]
