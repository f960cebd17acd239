"""The losses of the multi-modal lesion-guided synthesis, as seed 003 writes them (§4.2.2, §4.3).

Every term is a squared error ‖·‖²₂ (LSGAN style: real scores pushed to 1, fake to 0, the
modality score to the modality's index i). ``‖a‖²₂`` is computed per sample and averaged over the
batch (the expectation E). With ``reduction="mean"`` (the default) it is the *mean* of the squared
elements, as MSE losses are usually implemented, so that maps of different sizes weigh alike; with
``reduction="sum"`` it is the literal sum of squares. Names: ``s`` structure map, ``m`` background
mask (1 outside the organ), ``*_r`` reconstructed, ``*_g`` generated from noise, ``f`` the
encoder's sample, ``z`` N(0, 1) noise; tensors are ``(B, C, H, W)`` (or any shape with the batch
first).

Terms: (6) :func:`mask_loss`, (7) :func:`reconstruction_loss`, (8) :func:`latent_critic_loss`,
(9) :func:`latent_encoder_loss`, (10) :func:`map_critic_loss`, (11) :func:`map_generator_loss`,
(13) :func:`acgan_critic_loss`, (14) :func:`acgan_generator_loss`, (15) :func:`lesion_loss`,
(16) :func:`registration_loss`, (17) :func:`generator_total_loss`, (18) :func:`pretrain_loss`,
(19) :func:`cycle_loss`, (22) :func:`segmenter_loss`; the converter's (20) and (21) have the form
of (13) and (14) and use :func:`acgan_critic_loss` and :func:`acgan_generator_loss`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

REDUCTIONS = ("mean", "sum")


def squared_norm(a: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """E[‖a‖²₂]: per sample the mean (or sum) of ``a²`` over all but the batch axis, averaged
    over the batch.

    Raises:
        ValueError: an unknown reduction or a tensor without a batch axis.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if a.ndim < 1:
        raise ValueError("a loss term needs a batch axis, got a 0-d tensor")
    per = (a * a).reshape(a.shape[0], -1)
    return (per.mean(dim=1) if reduction == "mean" else per.sum(dim=1)).mean()


def mask_loss(m: torch.Tensor, m_r: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """(6) L_m(G_m) = E_{m,s}[‖m − m_r‖²₂], ``m_r = G_m(s)``, ``m`` from Algorithm 2."""
    return squared_norm(m - m_r, reduction)


def reconstruction_loss(s: torch.Tensor, s_r: torch.Tensor, m_r: torch.Tensor,
                        reduction: str = "mean") -> torch.Tensor:
    """(7) L_r(E_s, G_s) = E_{s,f,m}[‖s − s_r‖²₂ + ‖m_r × s_r‖²₂], ``s_r = G_s(f)``.

    The second term penalises structure the decoder puts in the background (``m_r = G_m(s)``).
    """
    return squared_norm(s - s_r, reduction) + squared_norm(m_r * s_r, reduction)


def latent_critic_loss(dz_z: torch.Tensor, dz_f: torch.Tensor,
                       reduction: str = "mean") -> torch.Tensor:
    """(8) L_d1(D_z) = E_{s,z}[‖D_z(z) − 1‖²₂ + ‖D_z(f)‖²₂]: noise ``z`` is real, ``f`` fake."""
    return squared_norm(dz_z - 1, reduction) + squared_norm(dz_f, reduction)


def latent_encoder_loss(dz_f: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """(9) L_g1(E_s) = E_z[‖D_z(f) − 1‖²₂]: the encoder makes ``f`` pass for N(0, 1) noise."""
    return squared_norm(dz_f - 1, reduction)


def map_critic_loss(ds_s: torch.Tensor, ds_sg: torch.Tensor,
                    reduction: str = "mean") -> torch.Tensor:
    """(10) L_d2(D_s) = E_{s,z}[‖D_s(s) − 1‖²₂ + ‖D_s(s_g)‖²₂], ``s_g = G_s(z)``."""
    return squared_norm(ds_s - 1, reduction) + squared_norm(ds_sg, reduction)


def map_generator_loss(ds_sg: torch.Tensor, s_g: torch.Tensor, m_g: torch.Tensor,
                       reduction: str = "mean") -> torch.Tensor:
    """(11) L_g2(G_s) = E_z[‖D_s(s_g) − 1‖²₂ + ‖m_g × s_g‖²₂], ``m_g = G_m(s_g)``."""
    return squared_norm(ds_sg - 1, reduction) + squared_norm(m_g * s_g, reduction)


def _check_modalities(name: str, *seqs: Sequence[torch.Tensor]) -> int:
    n = len(seqs[0])
    if n == 0 or any(len(q) != n for q in seqs):
        raise ValueError(f"{name}: one tensor per modality in every list, got lengths "
                         f"{[len(q) for q in seqs]}")
    return n


def acgan_critic_loss(d_real: Sequence[torch.Tensor], c_real: Sequence[torch.Tensor],
                      d_fake: Sequence[torch.Tensor], c_fake: Sequence[torch.Tensor],
                      reduction: str = "mean") -> torch.Tensor:
    """(13) L_d2(D) = E[Σ_i (‖d(x_i) − 1‖²₂ + ‖d(x_g,i)‖²₂ + ‖c(x_i) − i‖²₂ + ‖c(x_g,i) − i‖²₂)].

    Args:
        d_real, c_real: per modality i (list position = i), D's two outputs on real images x_i.
        d_fake, c_fake: the same on the synthetic images x_g,i (detached for the critic's step).

    Raises:
        ValueError: lists of different or zero lengths.
    """
    n = _check_modalities("acgan_critic_loss", d_real, c_real, d_fake, c_fake)
    return sum((squared_norm(d_real[i] - 1, reduction) + squared_norm(d_fake[i], reduction)
                + squared_norm(c_real[i] - i, reduction) + squared_norm(c_fake[i] - i, reduction)
                for i in range(n)), torch.zeros(()))


def acgan_generator_loss(d_fake: Sequence[torch.Tensor], c_fake: Sequence[torch.Tensor],
                         reduction: str = "mean") -> torch.Tensor:
    """(14) L_g(G) = E[Σ_i (‖d(x_g,i) − 1‖²₂ + ‖c(x_g,i) − i‖²₂)].

    Raises:
        ValueError: lists of different or zero lengths.
    """
    n = _check_modalities("acgan_generator_loss", d_fake, c_fake)
    return sum((squared_norm(d_fake[i] - 1, reduction) + squared_norm(c_fake[i] - i, reduction)
                for i in range(n)), torch.zeros(()))


def lesion_loss(lesion: torch.Tensor, recovered: Sequence[torch.Tensor],
                reduction: str = "mean") -> torch.Tensor:
    """(15) L_les(G) = E[Σ_i ‖l − l_g,i‖²₂], ``l_g,i = G_l,i(x_g,i)`` per modality i.

    Raises:
        ValueError: no recovered labels.
    """
    _check_modalities("lesion_loss", recovered)
    return sum((squared_norm(lesion - r, reduction) for r in recovered), torch.zeros(()))


def registration_loss(synthetic: Sequence[torch.Tensor],
                      converted: Sequence[Sequence[torch.Tensor | None]],
                      reduction: str = "mean") -> torch.Tensor:
    """(16) L_reg(G) = E[Σ_j Σ_{i≠j} ‖x_g,i − x_gt,j,i‖²₂], ``x_gt,j,i = G_t(x_g,j, one_hot(i))``.

    Args:
        synthetic: x_g,i per modality i.
        converted: ``converted[j][i]`` = x_gt,j,i, modality j's synthetic image converted to
            modality i (the diagonal ``i == j`` is not used and may be None).

    Raises:
        ValueError: ``converted`` is not n × n for n modalities.
    """
    n = _check_modalities("registration_loss", synthetic)
    if len(converted) != n or any(len(row) != n for row in converted):
        raise ValueError(f"registration_loss: converted must be {n} x {n}")
    total = torch.zeros(())
    for j in range(n):
        for i in range(n):
            if i != j:
                x_gt = converted[j][i]
                if x_gt is None:
                    raise ValueError(f"registration_loss: converted[{j}][{i}] is missing")
                total = total + squared_norm(synthetic[i] - x_gt, reduction)
    return total


def generator_total_loss(l_g: torch.Tensor, l_les: torch.Tensor | None = None,
                         l_reg: torch.Tensor | None = None) -> torch.Tensor:
    """(17) L(G) = L_g(G) + L_les(G) + L_reg(G), unweighted; a switched-off term is None."""
    total = l_g
    for term in (l_les, l_reg):
        if term is not None:
            total = total + term
    return total


def pretrain_loss(synthetic: Sequence[torch.Tensor], real: Sequence[torch.Tensor],
                  masks: Sequence[torch.Tensor], reduction: str = "mean") -> torch.Tensor:
    """(18) L_p(G) = E[Σ_i (‖x_g,i − x_i‖²₂ + ‖x_g,i × m_i − x_i × m_i‖²₂)], the self-supervised
    pre-training on real structure maps (``m_i`` from Algorithm 2 on x_i, as the source writes).

    Raises:
        ValueError: lists of different or zero lengths.
    """
    n = _check_modalities("pretrain_loss", synthetic, real, masks)
    return sum((squared_norm(synthetic[i] - real[i], reduction)
                + squared_norm(synthetic[i] * masks[i] - real[i] * masks[i], reduction)
                for i in range(n)), torch.zeros(()))


def cycle_loss(real: Sequence[torch.Tensor],
               cycled: Sequence[Sequence[torch.Tensor | None]],
               reduction: str = "mean") -> torch.Tensor:
    """(19) L_cycle(G_t) = E[Σ_j Σ_{i≠j} ‖x_i − x_cr,j,i‖²₂], ``x_cr,j,i = G_t(x_t,i,j, one_hot(i))``
    and ``x_t,i,j = G_t(x_i, one_hot(j))``: modality i converted to j and back.

    Args:
        real: x_i per modality i.
        cycled: ``cycled[j][i]`` = x_cr,j,i (the diagonal is not used and may be None).

    Raises:
        ValueError: ``cycled`` is not n × n for n modalities, or an off-diagonal entry is None.
    """
    return registration_loss(real, cycled, reduction)


def segmenter_loss(lesion: torch.Tensor, recovered: torch.Tensor,
                   reduction: str = "mean") -> torch.Tensor:
    """(22) L_seg(G_l,i) = E[‖l_i − l_r,i‖²₂], ``l_r,i = G_l,i(x_i)`` on real images x_i."""
    return squared_norm(lesion - recovered, reduction)
