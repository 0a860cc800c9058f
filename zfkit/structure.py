"""How much structure a filter bank holds, and how big its filters are.

A random start looks like confetti whatever its size, so a picture of "trained" first-layer
filters says little until a number says whether they are still noise. :func:`spectral_flatness`
is that number: the geometric mean of a filter's power spectrum over its arithmetic mean (Wiener
entropy). A spectrum that is the same at every frequency scores 1; white noise, whose spectrum
is flat only on average, scores about 0.84 for an RGB filter (:func:`white_noise_flatness` gives
the reference for any bank shape); smooth blobs, edges and Gabor patches put almost all their
energy in a few low frequencies and score near 0. It measures correlation between neighbouring
weights, not sparsity: a single-pixel impulse also has a flat spectrum and scores 1.

:func:`relative_change` is training's change of a layer relative to its start,
``|W - W0| / |W0|``; below 1 the random start is the larger part of ``W``, a heuristic for "the
picture still shows the start", which the flatness of ``W - W0`` completes.

:func:`filter_rms` and :func:`renormalise` are Zeiler and Fergus's rule against dominant filters
(Sec. 3, "Training details"): each filter "whose RMS value exceeds a fixed radius of 10^-1" is
scaled back to that radius, for inputs "roughly in the [-128,128] range"
(:data:`zfkit.paper_recipes.ZFNET_RENORMALISATION`).

Reference: Zeiler and Fergus (2014), arXiv:1311.2901, Sec. 3 and Fig. 6 (a); spectral flatness:
Johnston (1988), "Transform coding of audio signals using perceptual noise criteria".
"""
from __future__ import annotations

import torch

__all__ = ["power_spectrum", "spectral_flatness", "white_noise_flatness", "relative_change",
           "filter_rms", "renormalise"]


def _bank(weight: torch.Tensor) -> torch.Tensor:
    w = torch.as_tensor(weight).detach().double().cpu()
    if w.dim() != 4 or w.shape[-1] != w.shape[-2]:
        raise ValueError(f"expected square filters (F, C, k, k), got {tuple(w.shape)}")
    return w


def power_spectrum(weight: torch.Tensor) -> torch.Tensor:
    """Each filter's power spectrum on its own ``k x k`` DFT grid, summed over input channels.

    No zero padding: for white noise the ``k*k`` bins are then independent, which is what makes
    :func:`white_noise_flatness` a fair reference.

    Args:
        weight: ``(F, C, k, k)`` filters (tensor or array).
    Returns:
        ``(F, k, k)`` float64 power (unshifted: frequency 0 at ``[0, 0]``).
    """
    return torch.fft.fft2(_bank(weight)).abs().square().sum(1)          # (F, k, k)


def spectral_flatness(weight: torch.Tensor, *, floor: float = 1e-12) -> torch.Tensor:
    """Spectral flatness of every filter: geometric over arithmetic mean of its power spectrum.

    Args:
        weight: ``(F, C, k, k)`` filters.
        floor: bins below ``floor`` times the filter's mean power count as that floor (so that
            one exact zero does not make the score 0); an all-zero filter scores 0.
    Returns:
        ``(F,)`` float64 in [0, 1]: 1 for a flat spectrum, about 0.84 for RGB white noise, near 0
        for smooth filters.
    """
    power = power_spectrum(weight).flatten(1)                           # (F, k*k)
    mean = power.mean(1)                                                # (F,)
    safe = mean.clamp_min(1e-300)
    geometric = torch.log(torch.maximum(power, floor * safe[:, None])).mean(1).exp()
    return torch.where(mean > 0, geometric / safe, torch.zeros_like(mean))


def white_noise_flatness(shape: tuple[int, ...], *, draws: int = 32, seed: int = 0
                         ) -> torch.Tensor:
    """The bank-mean :func:`spectral_flatness` of ``draws`` white-noise banks of ``shape``.

    Uniform and Gaussian weights give the same values (flatness does not depend on the scale,
    and the DFT of many independent weights is close to Gaussian either way).

    Args:
        shape: ``(F, C, k, k)``, e.g. ``tuple(weight.shape)``.
        draws: how many banks.
        seed: the generator's seed (the reference is reproducible).
    Returns:
        ``(draws,)`` float64: one bank mean per draw (report its mean and spread).
    """
    if len(shape) != 4 or draws < 1:
        raise ValueError(f"need a bank shape (F, C, k, k) and draws >= 1, got {shape}, {draws}")
    generator = torch.Generator().manual_seed(seed)
    return torch.stack([spectral_flatness(torch.randn(shape, generator=generator,
                                                      dtype=torch.float64)).mean()
                        for _ in range(draws)])


def relative_change(weight: torch.Tensor, initial: torch.Tensor) -> float:
    """``|W - W0| / |W0|`` (Frobenius norms): how far training moved a layer from its start."""
    w, w0 = torch.as_tensor(weight).double(), torch.as_tensor(initial).double()
    if w.shape != w0.shape:
        raise ValueError(f"shapes differ: {tuple(w.shape)} and {tuple(w0.shape)}")
    norm = float(w0.norm())
    if norm == 0:
        raise ValueError("the initial weights are all zero: the change has no scale")
    return float((w - w0).norm()) / norm


def filter_rms(weight: torch.Tensor) -> torch.Tensor:
    """``(F,)`` each filter's root-mean-square weight (over its ``C*k*k`` weights)."""
    w = torch.as_tensor(weight).detach().double()
    return w.flatten(1).square().mean(1).sqrt()


def renormalise(weight: torch.Tensor, radius: float = 0.1) -> torch.Tensor:
    """Zeiler and Fergus's rule: every filter whose RMS exceeds ``radius`` is scaled down to it;
    the others are unchanged (the paper applies it to every conv layer during training).

    Args:
        weight: ``(F, ...)`` one conv layer's filters.
        radius: the fixed radius (the paper's 0.1 is for inputs in about [-128, 128]).
    Returns:
        A new tensor of the same shape and dtype.
    """
    if radius <= 0:
        raise ValueError(f"radius must be positive, got {radius}")
    w = torch.as_tensor(weight)
    rms = filter_rms(w)
    scale = torch.where(rms > radius, radius / rms.clamp_min(1e-300), torch.ones_like(rms))
    return w * scale.to(w.dtype).view(-1, *([1] * (w.dim() - 1)))
