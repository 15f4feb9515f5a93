"""The stimulus map: which clip file an event's stimulus id names (video.clips).

Three forms: a mapping {id: file}; a template with {stim} (stimuli/{stim}.mp4); a template with glob
characters (stimuli/{stim}.*) that must match exactly one file. The id is put into a glob escaped,
so `clip09` with stimuli/{stim}.* finds clip09.mp4 and never clip09_vfr.mp4, and `clip0[1]` is a
name, not a pattern. A clip must lie below the folder the template starts from: an id read from a
CSV such as `../../etc/x` is refused, not followed. A clip that is missing stops the ingest naming
it: a stimulus without its video is a mistake in the files or the spec, not a window to drop.
"""

from __future__ import annotations

import glob
from pathlib import Path

from peftzoo_data.ingest.errors import IngestError
from peftzoo_data.ingest.spec import VideoSpec

_GLOB = set("*?[")


def _fill(template: str, fields: dict[str, str], escape: bool) -> str:
    try:
        return template.format(**{k: glob.escape(v) if escape else v for k, v in fields.items()})
    except (KeyError, IndexError) as exc:
        raise IngestError(
            f"video.clips: {template!r} uses {{{exc.args[0]}}}, which is not known (known: {sorted(fields)})"
        ) from None
    except ValueError as exc:
        raise IngestError(f"video.clips: {template!r} is not a valid template ({exc})") from None


def _absolute(text: str, base: Path) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else base / path


def template_root(template: str, fields: dict[str, str], base: Path) -> Path:
    """The folder a template's clips must stay below: its text up to the first `{stim}` (with the
    recording's own fields filled in), cut back to a whole folder."""
    head = _fill(template.split("{stim}", 1)[0], fields, escape=False)
    folder = head if head.endswith(("/", "\\")) else str(Path(head or ".").parent)
    return _absolute(folder, base).resolve()


def _confined(path: Path, root: Path, stim: str, template: str) -> Path:
    real = path.resolve()
    if not real.is_relative_to(root):
        raise IngestError(
            f"video.clips: stimulus id {stim!r} leads to {str(path)!r}, outside {str(root)!r} where "
            f"{template!r} keeps the clips; fix the event's stimulus id (no '..' or absolute paths)"
        )
    return path


def clip_path(spec: VideoSpec, stim: str, fields: dict[str, str], base: Path) -> Path:
    """The clip file of stimulus `stim`, or an IngestError naming the missing or ambiguous file."""
    clips = spec.clips
    if isinstance(clips, dict):
        if stim not in clips:
            known = sorted(clips)
            raise IngestError(
                f"video.clips: the stimulus map has no entry for event id {stim!r} (it has {known[:8]}"
                f"{' ...' if len(known) > 8 else ''}); add it, or narrow events.match to the stimuli "
                f"you map"
            )
        path = _absolute(_fill(clips[stim], fields, escape=False), base)
        if not path.is_file():
            raise IngestError(
                f"video.clips: stimulus {stim!r} maps to {str(path)!r}, which does not exist; fix the "
                f"map or copy the clip"
            )
        return path
    assert clips is not None
    root = template_root(clips, fields, base)
    filled = {**fields, "stim": stim}
    literal = _fill(clips, filled, escape=False)
    if not (_GLOB & set(clips.replace("{stim}", ""))):
        path = _confined(_absolute(literal, base), root, stim, clips)
        if not path.is_file():
            raise IngestError(
                f"video.clips: the clip of stimulus {stim!r}, {str(path)!r}, does not exist; copy it "
                f"there or fix video.clips (a glob such as stimuli/{{stim}}.* finds any extension)"
            )
        return path
    pattern = str(_absolute(_fill(clips, filled, escape=True), base))
    matches = sorted(Path(p) for p in glob.glob(pattern) if Path(p).is_file())
    if len(matches) != 1:
        found = f"{len(matches)} files ({[m.name for m in matches[:4]]})" if matches else "no file"
        raise IngestError(
            f"video.clips: {clips!r} for stimulus {stim!r} ({pattern}) matches {found}; it must match "
            f"exactly one clip: make the pattern stricter (stimuli/{{stim}}.mp4) or give a map "
            f"{{id: file}}"
        )
    return _confined(matches[0], root, stim, clips)
