"""`python -m recipes.ingest` against a plain MNE script on the same file, both as whole commands.

    python benchmarks/ingest_vs_mne.py [--rounds 2] [--minutes 10] [--recordings 4] [--workdir DIR]

Writes (not timed) a FIF of 62 EEG channels at 1000 Hz (SEED-DV's cap) with `--minutes` of noise,
a 10 Hz sine and a one-sample pulse 0.5 s after each of ~60 annotated events (one every 10 s), a
3-s stimulus clip, the ingest spec, and the plain MNE script: read, band-pass 0.1-75 Hz, notch
50 Hz, polyphase resampling to 200 Hz (events with it), cut the 2-s windows, save .npy. Then:

1. one recording, one thread each (OMP/OpenBLAS/MKL threads 1): both commands timed in
   alternating rounds, best of `--rounds`, in wall time and in CPU time (user + system, from
   getrusage of the children); prints both ratios, and how far the outputs lie apart
   (RMS in 0.5-70 Hz relative to the script's, and whether every pulse is on the same sample);
2. `--recordings` copies of the file ingested with --workers 1 and with --workers N (N: the
   cores), timed once each; prints the speed-up, beside the machine's own ceiling for it: the
   one-recording command alone against N copies of it started at once.
Results are printed as JSON.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SFREQ = 1000.0

MNE_SCRIPT = '''"""The job done with MNE alone: LaBraM's preprocessing and the 2-s windows after each event."""
import sys

import mne
import numpy as np

path, out = sys.argv[1], sys.argv[2]
raw = mne.io.read_raw_fif(path, preload=True, verbose="error")
raw.pick("eeg")
raw.filter(0.1, 75.0, verbose="error")
raw.notch_filter(50.0, verbose="error")
events, _ = mne.events_from_annotations(raw, regexp="movie/", verbose="error")
raw, events = raw.resample(200.0, events=events, method="polyphase", verbose="error")
data = raw.get_data(units="uV")
starts = events[:, 0] - raw.first_samp
windows = np.stack([data[:, s:s + 400] for s in starts if s + 400 <= data.shape[1]]).astype(np.float32)
np.save(out, windows)
'''


def make_recording(path: Path, minutes: float) -> int:
    import mne

    from peftzoo_data.seed_dv import CHANNELS

    n = int(minutes * 60 * SFREQ)
    rng = np.random.default_rng(0)
    t = np.arange(n) / SFREQ
    data = rng.standard_normal((len(CHANNELS), n)) * 10e-6 + 20e-6 * np.sin(2 * np.pi * 10 * t)
    onsets = np.arange(5.0, minutes * 60 - 5, 10.0)
    cz = CHANNELS.index("CZ")
    data[cz] = rng.standard_normal(n) * 1e-6
    for onset in onsets:
        data[cz, int(round((onset + 0.5) * SFREQ))] = 300e-6
    raw = mne.io.RawArray(data, mne.create_info(list(CHANNELS), SFREQ, "eeg"), verbose="error")
    raw.set_meas_date(datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc))
    raw.set_annotations(mne.Annotations(onsets, [0.0] * len(onsets), ["movie/clip"] * len(onsets)))
    raw.save(path, overwrite=True, verbose="error")
    return len(onsets)


def make_clip(path: Path, seconds: float = 3.0, fps: int = 24) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        for i in range(int(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(np.full((240, 320, 3), (i * 7) % 256, np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_spec(path: Path, files: str, duplicates: bool = False) -> None:
    """The ingest spec; `duplicates`: the recordings are byte-for-byte copies (the --workers run), which
    ingest refuses unless the recording set allows them."""
    allow = ", duplicates: allow" if duplicates else ""
    path.write_text(
        f"recordings: {{files: '{files}'{allow}}}\n"
        "events: {match: 'movie/(?P<stim>\\w+)'}\n"
        "window: {seconds: 2}\n"
        "video: {clips: 'stim/{stim}.mp4', frames: 8, short_side: 64}\n"
        "split: {val: 0.0}\n"
    )


def one_thread_env() -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = "1"
    return env


def timed(command: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system of the command and its children). The CPU time
    is the steadier number on a machine that others share."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def band(x: np.ndarray) -> np.ndarray:
    spectrum = np.fft.rfft(x, axis=-1)
    freqs = np.fft.rfftfreq(x.shape[-1], 1 / 200)
    spectrum[..., (freqs < 0.5) | (freqs > 70)] = 0
    return np.fft.irfft(spectrum, n=x.shape[-1], axis=-1)


def machine_ceiling(command: list[str], work: Path, copies: int, env: dict) -> tuple[float, float]:
    """(seconds of the one-recording command alone, seconds of `copies` of it started at once, each into
    its own folder): the most that `copies` workers can gain on this machine (shared memory bandwidth
    and caches, or virtual cores, keep it below `copies`), to read the --workers speed-up against."""
    out = command.index("--out") + 1

    def started(i: int) -> subprocess.Popen:
        shutil.rmtree(work / f"out_ceiling{i}", ignore_errors=True)
        argv = [*command[:out], str(work / f"out_ceiling{i}"), *command[out + 1 :]]
        return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    t = time.perf_counter()
    started(0).wait()
    alone = time.perf_counter() - t
    t = time.perf_counter()
    for process in [started(i) for i in range(copies)]:
        process.wait()
    return alone, time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--recordings", type=int, default=4, help="copies ingested to time --workers (0: skip)")
    parser.add_argument("--workers", type=int, default=None, help="workers of the parallel run (default: the cores)")
    parser.add_argument("--workdir")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        shutil.rmtree(work / "one", ignore_errors=True)
        (work / "one").mkdir(parents=True)
        (work / "stim").mkdir(exist_ok=True)
        t = time.perf_counter()
        events = make_recording(work / "one" / "rec_raw.fif", args.minutes)
        make_clip(work / "stim" / "clip.mp4")
        (work / "mne_script.py").write_text(MNE_SCRIPT)
        write_spec(work / "one.yaml", "one/*.fif")
        print(
            f"wrote {args.minutes:g} min of 62-channel {SFREQ:g} Hz EEG with {events} events "
            f"in {time.perf_counter() - t:.0f} s",
            file=sys.stderr,
        )
        env = one_thread_env()
        ours = [
            sys.executable,
            "-m",
            "recipes.ingest",
            str(work / "one.yaml"),
            "--out",
            str(work / "out"),
            "--quiet",
            "--workers",
            "1",
        ]
        plain = [sys.executable, str(work / "mne_script.py"), str(work / "one" / "rec_raw.fif"), str(work / "mne.npy")]
        times: dict[str, list[float]] = {"ingest": [], "mne": []}
        cpu: dict[str, list[float]] = {"ingest": [], "mne": []}
        for _ in range(args.rounds):
            shutil.rmtree(work / "out", ignore_errors=True)
            for name, command in (("ingest", ours), ("mne", plain)):
                wall, used = timed(command, env)
                times[name].append(wall)
                cpu[name].append(used)
        a, b = np.load(work / "out" / "eeg.npy").astype(np.float64), np.load(work / "mne.npy").astype(np.float64)
        meta = json.loads((work / "out" / "meta.json").read_text())
        cz = meta["channels"].index("CZ")
        result = {
            "machine": {"cores": os.cpu_count(), "python": sys.version.split()[0]},
            "one_recording": {
                "minutes": args.minutes,
                "channels": 62,
                "sfreq": SFREQ,
                "events": events,
                "threads": 1,
                "ingest_s": round(min(times["ingest"]), 2),
                "mne_script_s": round(min(times["mne"]), 2),
                "all_s": {k: [round(v, 2) for v in vs] for k, vs in times.items()},
                "speedup": round(min(times["mne"]) / min(times["ingest"]), 2),
                "ingest_cpu_s": round(min(cpu["ingest"]), 2),
                "mne_script_cpu_s": round(min(cpu["mne"]), 2),
                "all_cpu_s": {k: [round(v, 2) for v in vs] for k, vs in cpu.items()},
                "speedup_cpu": round(min(cpu["mne"]) / min(cpu["ingest"]), 2),
                "windows": [len(a), len(b)],
                "rms_difference_0.5_70_hz": float(
                    np.sqrt(np.mean((band(a) - band(b)) ** 2)) / np.sqrt(np.mean(band(b) ** 2))
                ),
                "pulses_on_the_same_sample": bool(
                    [int(np.argmax(w[cz])) for w in a] == [int(np.argmax(w[cz])) for w in b]
                ),
            },
        }
        if args.recordings:
            (work / "many").mkdir(exist_ok=True)
            for i in range(args.recordings):
                target = work / "many" / f"rec{i:02d}_raw.fif"
                if not target.exists():
                    os.link(work / "one" / "rec_raw.fif", target) if i == 0 else shutil.copy(
                        work / "one" / "rec_raw.fif", target
                    )
            write_spec(work / "many.yaml", "many/*.fif", duplicates=True)
            workers = args.workers or len(os.sched_getaffinity(0))
            runs = {}
            for n in (1, workers):
                shutil.rmtree(work / "out_many", ignore_errors=True)
                command = [
                    sys.executable,
                    "-m",
                    "recipes.ingest",
                    str(work / "many.yaml"),
                    "--out",
                    str(work / "out_many"),
                    "--quiet",
                    "--workers",
                    str(n),
                ]
                runs[n] = timed(command, {**os.environ, "PYTHONPATH": env["PYTHONPATH"]})[0]
            alone, together = machine_ceiling(ours, work, workers, env)
            result["many_recordings"] = {
                "recordings": args.recordings,
                "workers": workers,
                "seconds": {str(k): round(v, 2) for k, v in runs.items()},
                "speedup": round(runs[1] / runs[workers], 2),
                "machine_ceiling": {
                    "one_command_alone_s": round(alone, 2),
                    f"{workers}_commands_at_once_s": round(together, 2),
                    "speedup": round(workers * alone / together, 2),
                },
            }
        print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
