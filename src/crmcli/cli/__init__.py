"""The Typer command tree: parse, call crmcli.core, render. No SQL here."""
