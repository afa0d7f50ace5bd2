"""Real Git repositories for the Git sync tests: `git init` in a folder, commits by one author."""

import subprocess

from tests.workflows.conftest import spec_text


def flow(name: str, message: str = "hello", step_type: str = "test.spec_echo") -> str:
    return spec_text(f"""
        name: {name}
        description: Synced from Git.
        steps:
          - id: greet
            type: {step_type}
            with: {{message: "{message}"}}
    """)


class Repo:
    def __init__(self, path):
        self.path = path
        self.git("init", "-q", "-b", "main")

    def git(self, *args) -> str:
        return subprocess.run(["git", "-c", "user.name=Grace Git", "-c", "user.email=grace@example.com", *args],
                              cwd=self.path, check=True, capture_output=True, text=True).stdout.strip()

    def commit(self, message: str, files: dict[str, str]) -> str:
        for name, text in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")
