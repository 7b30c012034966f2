"""iwae: the importance-weighted autoencoder (Burda et al., 2016). The loss is minus the k-sample bound

    log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x),   z_i ~ q(z|x),  k = `--iw-samples`,

which rises towards log p(x) with k; the reported E_q[log p(x|z)], KL and ELBO are over the same
k samples.
"""

from tfvae.config import Option
from tfvae.lazy import tf
from tfvae.models.base import Variational, register
from tfvae.objectives import iwae_bound


@register
class IWAE(Variational):
    name = "iwae"
    summary = "importance-weighted autoencoder: log (1/k) sum_i p(x, z_i) / q(z_i|x)"
    options = Variational.options + (Option("iw_samples", 5, "importance samples k per example.", flag="-k"),)
    metric_names = ("loss", "log_px_z", "kl", "elbo", "iwae_bound")
    samples_option = "iw_samples"

    def objective(self, x, noise, schedule):
        log_w, log_px_z, q = self.log_importance_weights(x, noise["eps"])
        bound = iwae_bound(log_w)
        if self.prior.closed_form_kl:
            kl = self.prior.kl(q)
        else:  # log q(z_i|x) - log p(z_i) = log p(x|z_i) - log w_i, over the same samples
            kl = tf.reduce_mean(log_px_z - log_w, axis=1)
        mean_log_px_z = tf.reduce_mean(log_px_z, axis=1)
        return -bound, {"loss": -bound, "log_px_z": mean_log_px_z, self.kl_metric: kl,
                        "elbo": mean_log_px_z - kl, "iwae_bound": bound}
