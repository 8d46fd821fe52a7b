from shardcrawl.cli.main import entrypoint

entrypoint()
