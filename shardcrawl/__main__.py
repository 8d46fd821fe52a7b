from shardcrawl.cli import entrypoint

entrypoint()
