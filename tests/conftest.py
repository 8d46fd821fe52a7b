pytest_plugins = ["tests.plugins.s3", "tests.plugins.temporal", "tests.plugins.sites"]
