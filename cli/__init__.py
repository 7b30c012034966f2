"""The `tfvae` command line (installed as tfvae.cli): thin click commands over the library."""
