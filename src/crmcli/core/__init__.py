"""The domain: plain functions over a session and plain values. Never imports typer or rich."""
