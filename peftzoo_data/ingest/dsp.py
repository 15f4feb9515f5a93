"""LaBraM's filters and polyphase resampling with numpy alone, equal to MNE's and scipy's.

Why not call them: `scipy.signal` takes about 0.4 s of CPU to import (it pulls in scipy.stats,
interpolate, optimize, ...), and MNE's FIR design and scipy's resample_poly both import it, for
arithmetic that numpy does in a few lines. On a 10-minute recording that import alone was a third
of the whole command (benchmarks/ingest_vs_mne.py). The designs below are those of
`mne.filter.create_filter` (method 'fir', fir_design 'firwin', window 'hamming', phase 'zero',
'auto' transition bands and length) and of `scipy.signal.resample_poly` (Kaiser window, beta 5,
10 zero crossings); tests/test_ingest_dsp.py checks that taps and outputs equal theirs.
"""

from __future__ import annotations

import numpy as np

LENGTH_FACTOR = 3.3  # MNE's _length_factors["hamming"]: filter seconds per 1 / transition bandwidth (Hz)


def firwin_lowpass(numtaps: int, cutoff: float, window: np.ndarray) -> np.ndarray:
    """scipy.signal.firwin(numtaps, cutoff, window, pass_zero=True, scale=True), `cutoff` as a
    fraction of the Nyquist frequency: a windowed sinc with unit gain at 0 Hz."""
    m = np.arange(numtaps) - 0.5 * (numtaps - 1)
    h = cutoff * np.sinc(cutoff * m) * window
    return h / h.sum()


def _firwin_design(n: int, freq: list[float], gain: list[float]) -> np.ndarray:
    """mne.filter._firwin_design: `n` taps from gain break points (`freq` as fractions of Nyquist),
    a sum of low-passes, each as long as its own transition band needs."""
    h = np.zeros(n)
    prev_freq, prev_gain = freq[-1], gain[-1]
    if prev_gain == 1:
        h[n // 2] = 1
    for this_freq, this_gain in zip(freq[::-1][1:], gain[::-1][1:]):
        if this_gain != prev_gain:
            transition = (prev_freq - this_freq) / 2.0
            this_n = int(round(LENGTH_FACTOR / transition))
            this_n += 1 - this_n % 2
            if this_n > n:
                raise ValueError(f"filter length {n} is too short for a transition band needing {this_n} samples")
            this_h = firwin_lowpass(this_n, (prev_freq + this_freq) / 2.0, np.hamming(this_n))
            offset = (n - this_n) // 2
            h[offset : n - offset] += this_h if this_gain else -this_h
        prev_gain, prev_freq = this_gain, this_freq
    return h


def _length(sfreq: float, narrowest: float) -> int:
    n = int(round(LENGTH_FACTOR / narrowest * sfreq))
    return n + (n - 1) % 2


def bandpass_taps(sfreq: float, l_freq: float | None, h_freq: float | None) -> np.ndarray | None:
    """The taps of `mne.filter.filter_data(x, sfreq, l_freq, h_freq)` with its defaults (a band-,
    high- or low-pass); None when both are None."""
    nyq = sfreq / 2.0
    if l_freq is not None and l_freq == 0:
        l_freq = None
    if l_freq is None and h_freq is None:
        return None
    if h_freq is not None and h_freq > nyq:
        raise ValueError(f"h_freq {h_freq} is above the Nyquist frequency {nyq}")
    l_trans = min(max(0.25 * l_freq, 2.0), l_freq) if l_freq is not None else np.inf
    h_trans = min(max(0.25 * h_freq, 2.0), nyq - h_freq) if h_freq is not None else np.inf
    if h_freq is not None and l_freq is None:
        freq, gain = [0, h_freq, h_freq + h_trans], [1, 1, 0]
        if h_freq + h_trans != nyq:
            freq, gain = freq + [nyq], gain + [0]
    elif l_freq is not None and h_freq is None:
        stop = l_freq - l_trans
        freq, gain = [stop, l_freq, nyq], [0, 1, 1]
        if stop != 0:
            freq, gain = [0] + freq, [0] + gain
    else:
        if not l_freq < h_freq:
            raise ValueError(f"l_freq {l_freq} must be below h_freq {h_freq}")
        f_s1, f_s2 = l_freq - l_trans, h_freq + h_trans
        freq, gain = [f_s1, l_freq, h_freq, f_s2], [0, 1, 1, 0]
        if f_s2 != nyq:
            freq, gain = freq + [nyq], gain + [0]
        if f_s1 != 0:
            freq, gain = [0] + freq, [0] + gain
    n = _length(sfreq, min(l_trans, h_trans))
    return _firwin_design(n, [f / nyq for f in freq], gain)


def notch_taps(sfreq: float, freqs: list[float]) -> np.ndarray | None:
    """The taps of `mne.filter.notch_filter(x, sfreq, freqs)` with its defaults (FIR band-stops
    freqs / 200 wide with 1-Hz transition bands); None for no frequency."""
    if not freqs:
        return None
    nyq = sfreq / 2.0
    tb = 0.5  # half of notch_filter's trans_bandwidth=1
    lows = [f - f / 200 / 2 - tb for f in freqs]
    highs = [f + f / 200 / 2 + tb for f in freqs]
    points = sorted(
        [(lo, 1) for lo in lows]
        + [(lo + tb, 0) for lo in lows]
        + [(hi - tb, 0) for hi in highs]
        + [(hi, 1) for hi in highs]
    )
    freq, gain = [p[0] for p in points], [p[1] for p in points]
    if freq[0] != 0:
        freq, gain = [0.0] + freq, [1] + gain
    if freq[-1] != nyq:
        freq, gain = freq + [nyq], gain + [1]
    return _firwin_design(_length(sfreq, tb), [f / nyq for f in freq], gain)


def _fast_length(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n (a quick length for numpy's FFT)."""
    best = 1 << int(np.ceil(np.log2(n)))
    f5 = 1
    while f5 < best:
        f35 = f5
        while f35 < best:
            m = f35
            while m < n:
                m *= 2
            best = min(best, m)
            f35 *= 3
        f5 *= 5
    return best


def zero_phase_filter(data: np.ndarray, taps: list[np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
    """`data` (C, N) through each of the symmetric `taps` at zero phase, as MNE's overlap-add FIR
    filtering does (edges extended by `reflect_limited` padding, one filter length long), with the
    filters merged into one convolution and one FFT per channel. Merging changes nothing away from
    the edges; within one notch length of them the notch sees the padded raw signal rather than the
    band-passed one. `out` may be `data` itself (filtered in place: each row is copied out first)."""
    h = taps[0]
    for more in taps[1:]:
        h = np.convolve(h, more)
    n = data.shape[1]
    edge = max(min(len(h), n) - 1, 0)  # never longer than the signal less one sample (MNE's reflect_limited)
    nfft = _fast_length(n + 2 * edge + len(h) - 1)
    spectrum = np.fft.rfft(h, nfft).astype(np.result_type(data.dtype, np.complex64))
    out = np.empty_like(data) if out is None else out
    shift = (len(h) - 1) // 2 + edge
    rows = 4  # channels per FFT: a buffer reused, small enough for the CPU's cache
    buffer = np.zeros((rows, nfft), dtype=np.result_type(data.dtype, np.float32))
    for a in range(0, len(data), rows):
        x = data[a : a + rows]
        g = len(x)
        buffer[:g, :edge] = 2 * x[:, :1] - x[:, edge:0:-1]
        buffer[:g, edge : edge + n] = x
        buffer[:g, edge + n : 2 * edge + n] = 2 * x[:, -1:] - x[:, -2 : -edge - 2 : -1]
        buffer[:g, 2 * edge + n :] = 0
        product = np.fft.rfft(buffer[:g], axis=1)
        product *= spectrum
        out[a : a + g] = np.fft.irfft(product, nfft, axis=1)[:, shift : shift + n]
    return out


def resample(data, up: int, down: int, n: int | None = None, step: int = 4096) -> np.ndarray:
    """scipy.signal.resample_poly(data, up, down, axis=1, padtype="reflect"): (C, N) -> (C,
    ceil(N * up / down)) through scipy's filter (20 * max(up, down) + 1 Kaiser-windowed taps, beta
    5, cut at the lower Nyquist frequency), in polyphase form: the outputs k, k + up, k + 2 up, ...
    share one set of taps and step `down` inputs apart, so each of the `up` sets is one strided FIR,
    computed as one matrix product per block of outputs.

    `data`: an array, or a function (start, stop) -> (C, stop - start) float samples, with `n`
    the number of samples, so that a recording can be read block by block (MNE's Raw.get_data)
    and never held whole at its own rate. The arithmetic is in the samples' dtype (float32 samples:
    float32 products, twice as quick as float64)."""
    read = (lambda a, b: data[:, a:b]) if isinstance(data, np.ndarray) else data
    n = data.shape[1] if n is None else n
    half = 10 * max(up, down)
    length = 2 * half + 1
    h = firwin_lowpass(length, 1.0 / max(up, down), np.kaiser(length, 5.0)) * up
    n_out = -(-n * up // down)
    # Output k uses inputs i from first(k) on, with taps h[k * down + half - i * up].
    first = [-((half - k * down) // up) for k in range(up)]
    taps_per_phase = -(-length // up)
    blocks = -(-taps_per_phase // down)  # taps per output in whole blocks of `down` inputs
    weights = []
    for k in range(up):
        j = k * down + half - first[k] * up - np.arange(blocks * down) * up
        w = np.where((j >= 0) & (j < length), h[np.clip(j, 0, length - 1)], 0.0)
        weights.append(w.reshape(blocks, down))
    out = None
    per_phase = [max(0, -(-(n_out - k) // up)) for k in range(up)]
    for ma in range(0, max(per_phase), step):
        mb = ma + step
        lo = min(first) + ma * down
        hi = max(first) + (mb + blocks - 1) * down  # the inputs this block of outputs needs
        chunk = read(max(lo, 0), min(hi, n))
        if lo < 0 or hi > n:  # the signal extended by reflection (without repeating the edge sample)
            wanted = np.abs(np.arange(lo, hi))
            wanted = np.where(wanted > n - 1, 2 * (n - 1) - wanted, wanted) - max(lo, 0)
            outside = (wanted < 0) | (wanted >= chunk.shape[1])  # a signal shorter than the filter: zeros
            chunk = np.where(outside[None], chunk.dtype.type(0), chunk[:, np.clip(wanted, 0, chunk.shape[1] - 1)])
        if out is None:
            dtype = np.result_type(chunk.dtype, np.float32)
            out = np.empty((len(chunk), n_out), dtype=dtype)
            weights = [w.astype(dtype) for w in weights]
        for k in range(up):
            count = min(mb, per_phase[k]) - ma
            if count <= 0:
                continue
            a = first[k] + ma * down - lo
            frames = chunk[:, a : a + (count + blocks - 1) * down].reshape(len(chunk), -1, down)
            for r in range(0, len(chunk), 4):  # 4 channels at a time: the products stay in the CPU's cache
                part = np.matmul(weights[k], frames[r : r + 4].transpose(0, 2, 1))  # (rows, blocks, frames)
                acc = part[:, 0, :count].copy()
                for b in range(1, blocks):  # y[m] = sum_b part[b, m + b]
                    acc += part[:, b, b : b + count]
                out[r : r + 4, k + ma * up : k + (ma + count) * up : up] = acc
    return out
