"""A migration reporter for tests: remembers the messages it was given."""

from mcb.migrate.progress import Reporter


class Messages(Reporter):
    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    def message(self, text: str) -> None:
        self.texts.append(text.strip())
