import numpy as np
import pytest

from vidrec.data.sampling import (
    ClipSampling,
    random_clip_indices,
    resample_timeline,
    segment_indices,
    uniform_clip_indices,
)
from vidrec.errors import ConfigError


def test_random_clip_has_stride_and_stays_inside():
    s = ClipSampling(num_frames=8, sampling_rate=4)
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(200):
        idx = random_clip_indices(100, s, rng=rng)
        assert len(idx) == 8 and (np.diff(idx) == 4).all()
        assert idx[0] >= 0 and idx[-1] <= 99
        starts.add(int(idx[0]))
    assert min(starts) == 0 and max(starts) == 100 - s.span  # every start is reachable


def test_uniform_clips_cover_the_video_and_centre_one():
    s = ClipSampling(num_frames=4, sampling_rate=2)
    clips = uniform_clip_indices(100, s, num_clips=5)
    assert clips.shape == (5, 4)
    assert clips[0, 0] == 0 and clips[-1, -1] == 99
    assert (np.diff(clips[:, 0]) > 0).all()
    one = uniform_clip_indices(100, s, num_clips=1)[0]
    assert one[0] == (100 - s.span) // 2


@pytest.mark.parametrize("pad,expected", [("repeat_last", [0, 2, 4, 4, 4, 4]), ("loop", [0, 2, 4, 1, 3, 0])])
def test_short_video_policies(pad, expected):
    s = ClipSampling(num_frames=6, sampling_rate=2, pad=pad)
    assert list(random_clip_indices(5, s, rng=np.random.default_rng(0))) == expected
    assert list(uniform_clip_indices(5, s, num_clips=3)[2]) == expected


def test_single_frame_video_never_crashes():
    s = ClipSampling(num_frames=8, sampling_rate=8)
    assert list(random_clip_indices(1, s, rng=np.random.default_rng(0))) == [0] * 8
    assert list(segment_indices(1, num_segments=3)) == [0, 0, 0]


def test_tsn_segments():
    test = segment_indices(90, num_segments=3)
    assert list(test) == [15, 45, 75]
    rng = np.random.default_rng(1)
    for _ in range(50):
        idx = segment_indices(90, num_segments=3, rng=rng)
        assert 0 <= idx[0] < 30 <= idx[1] < 60 <= idx[2] < 90


def test_target_fps_uses_presentation_times():
    # 60 fps video resampled to 15 fps: every 4th frame.
    stamps = np.arange(120) / 60
    assert list(resample_timeline(stamps, 15)[:5]) == [0, 4, 8, 12, 16]
    s = ClipSampling(num_frames=4, sampling_rate=1, target_fps=15)
    assert list(uniform_clip_indices(120, s, num_clips=1, timestamps=stamps)[0]) == [52, 56, 60, 64]
    # Variable frame rate: frames at 0, 0.1, 0.5, 0.6 s; at 10 fps the frame on screen at 0.3 s is frame 1.
    vfr = np.array([0.0, 0.1, 0.5, 0.6])
    assert list(resample_timeline(vfr, 10)) == [0, 1, 1, 1, 1, 2, 3]


def test_bad_settings():
    with pytest.raises(ConfigError):
        ClipSampling(num_frames=0)
    with pytest.raises(ConfigError, match="pad"):
        ClipSampling(pad="mirror")
    with pytest.raises(ConfigError, match="timestamps"):
        random_clip_indices(10, ClipSampling(target_fps=5), rng=np.random.default_rng(0))
