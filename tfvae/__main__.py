"""`python -m tfvae ...` runs the command line, installed or from a source checkout."""

from tfvae.cli.main import main

if __name__ == "__main__":
    main()
