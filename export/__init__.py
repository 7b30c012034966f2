"""Deployment (installed as tfvae.export): a SavedModel for TF Serving, TFLite decoders, the edge runner."""
