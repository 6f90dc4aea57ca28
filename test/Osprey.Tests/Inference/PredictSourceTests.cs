using System.Text.Json;
using OpenCvSharp;
using Osprey.Inference;
using Osprey.Tests.Models;
using static Osprey.Tests.Inference.PredictVideoFiles;

namespace Osprey.Tests.Inference;

/// <summary>
/// <c>osprey predict</c> on a video file, a <c>.streams</c> file and a stream URL: the annotated videos, label files and
/// predictions.json Ultralytics writes, checked against each frame predicted on its own.
/// </summary>
public class PredictSourceTests
{
    [Fact]
    public void VideoGivesAnAnnotatedVideoAndLabelsPerFrame()
    {
        string dir = TestModels.TempDir();
        try
        {
            string video = Path.Combine(dir, "clip.avi");
            Write(video, frames: 7, width: 192, height: 108, fps: 12, step: 3);
            var args = Args(dir, video, ("save_txt", "True"), ("save_json", "True"));
            var report = PredictRun.Run(args);

            Assert.Equal(Path.Combine(dir, "predict"), report.RunDirectory);
            Assert.Equal((7, 192, 108, 12.0), Describe(Path.Combine(report.RunDirectory, "clip.avi")));
            Assert.Equal(7, report.Images);
            Assert.All(report.InputShapes, s => Assert.Equal(new long[] { 1, 3, ImageSize, ImageSize }, s));
            var frames = Frames(video);
            var expected = PredictOneByOne(frames, args);
            Assert.True(expected.Sum(p => p.Detections.Count) >= 7, "the demo frames should show people");
            Assert.Equal(expected.Sum(p => p.Detections.Count), report.Detections);
            for (int k = 1; k <= 7; k++) AssertLabels(Path.Combine(report.RunDirectory, "labels", $"clip_{k}.txt"), expected[k - 1]);
            Assert.Equal(expected.Count(p => p.Detections.Count > 0), Directory.GetFiles(Path.Combine(report.RunDirectory, "labels")).Length);

            var json = JsonSerializer.Deserialize<List<PredictionRecord>>(File.ReadAllText(Path.Combine(report.RunDirectory, "predictions.json")))!;
            Assert.Equal(report.Detections, json.Count);
            for (int k = 1; k <= 7; k++)
            {
                var records = json.Where(r => r.image == $"{video} frame {k}").ToList();
                Assert.Equal(expected[k - 1].Detections.Select(d => d.ClassId), records.Select(r => r.class_id));
                Assert.Equal(expected[k - 1].Detections.Select(d => (double)d.Box.X1), records.Select(r => (double)r.xyxy[0]), new Tolerance(0.01));
            }

            // vid_stride=2: frames = int(7 / 2) = 3, the 2nd, 4th and 6th, numbered 1 … 3; the video keeps the source fps
            var strided = PredictRun.Run(Args(dir, video, ("save_txt", "True"), ("vid_stride", "2")));
            Assert.Equal(Path.Combine(dir, "predict2"), strided.RunDirectory);
            Assert.Equal((3, 192, 108, 12.0), Describe(Path.Combine(strided.RunDirectory, "clip.avi")));
            for (int k = 1; k <= 3; k++) AssertLabels(Path.Combine(strided.RunDirectory, "labels", $"clip_{k}.txt"), expected[2 * k - 1]);
            Assert.False(File.Exists(Path.Combine(strided.RunDirectory, "labels", "clip_4.txt")));
            foreach (var frame in frames) frame.Dispose();
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void StreamsFileBatchesItsStreams()
    {
        string dir = TestModels.TempDir();
        try
        {
            string a = Path.Combine(dir, "a.avi"), b = Path.Combine(dir, "b.avi");
            Write(a, frames: 6, width: 192, height: 108, fps: 10, step: 4);
            Write(b, frames: 5, width: 128, height: 160, fps: 25, step: -3);
            string streams = Path.Combine(dir, "list.streams");
            File.WriteAllLines(streams, new[] { a, b });
            var args = Args(dir, streams, ("save_txt", "True"), ("stream_buffer", "True"));
            var report = PredictRun.Run(args);

            // one batch of both streams per step, until the shorter one ends
            Assert.Equal(5, report.InputShapes.Count);
            Assert.All(report.InputShapes, s => Assert.Equal(new long[] { 2, 3, ImageSize, ImageSize }, s));
            Assert.Equal(10, report.Images);
            // per-stream videos named by the source's file name, written at 30 fps as Ultralytics does for streams
            Assert.Equal((5, 192, 108, 30.0), Describe(Path.Combine(report.RunDirectory, "a.avi")));
            Assert.Equal((5, 128, 160, 30.0), Describe(Path.Combine(report.RunDirectory, "b.avi")));
            // the batched predictions equal each frame predicted alone
            foreach (var (video, stem) in new[] { (a, "a"), (b, "b") })
            {
                var frames = Frames(video);
                var expected = PredictOneByOne(frames.Take(5), args);
                Assert.Contains(expected, p => p.Detections.Count > 0);
                for (int k = 1; k <= 5; k++) AssertLabels(Path.Combine(report.RunDirectory, "labels", $"{stem}_{k}.txt"), expected[k - 1]);
                foreach (var frame in frames) frame.Dispose();
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>
    /// OpenCvSharp4's runtime has FFmpeg (GetBuildInformation says so) but built without network protocols (only file,
    /// pipe, fd, data, concat … are linked in), so a stream URL cannot be read: the error says which of the two cases it is.
    /// </summary>
    [Fact]
    public void StreamUrlThatOpenCvCannotReadSaysWhy()
    {
        Assert.Matches(@"FFMPEG:\s+YES", Cv2.GetBuildInformation());
        string dir = TestModels.TempDir();
        try
        {
            string video = Path.Combine(dir, "clip.avi");
            Write(video, frames: 4, width: 160, height: 96, fps: 8, step: 5);
            using var server = new FileServer(video, "cam");
            var uri = new Uri(server.Url);
            var (code, _, err) = Osprey.Tests.Cli.CliAppTests.Run("predict", $"model={Model}", $"source={server.Url}", "imgsz=64",
                $"project={dir}", "device=cpu");
            Assert.Equal(Osprey.Cli.CliApp.Failure, code);
            Assert.StartsWith($"osprey: error: {server.Url}: the server at 127.0.0.1:{uri.Port} sends video/x-msvideo, which is not an MJPEG " +
                "stream (multipart/x-mixed-replace), the only kind of HTTP stream Osprey reads itself; and the OpenCV that ships with Osprey " +
                "(OpenCvSharp4's runtime) has FFmpeg without network protocols (http, rtsp, rtmp, tcp), so it cannot read this one.", err);
            // the same file opened as a file works
            Assert.Equal(4, Describe(video).Frames);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void UnreadableSourcesNameTheSourceAndTheProblem()
    {
        string dir = TestModels.TempDir();
        try
        {
            string url = $"http://127.0.0.1:{FreePort()}/nothing";
            var (code, _, err) = Osprey.Tests.Cli.CliAppTests.Run("predict", $"model={Model}", $"source={url}", "imgsz=64",
                $"project={dir}", "device=cpu");
            Assert.Equal(Osprey.Cli.CliApp.Failure, code);
            Assert.Equal($"osprey: error: {url}: no server answers at 127.0.0.1:{new Uri(url).Port}.", err.TrimEnd());

            string notVideo = Path.Combine(dir, "broken.avi");
            File.WriteAllText(notVideo, "not a video");
            var e = Assert.Throws<InvalidDataException>(() => PredictRun.Run(Args(dir, notVideo)));
            Assert.Equal($"{notVideo}: OpenCV cannot open this video (unsupported container or codec).", e.Message);
            Assert.Equal("not a video", File.ReadAllText(notVideo));
            string streams = Path.Combine(dir, "none.streams");
            File.WriteAllText(streams, "# nothing\n\n");
            var empty = Assert.Throws<InvalidDataException>(() => PredictRun.Run(Args(dir, streams)));
            Assert.Equal($"{streams}: lists no streams (one URL or video path a line).", empty.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private sealed class Tolerance(double tolerance) : IEqualityComparer<double>
    {
        public bool Equals(double x, double y) => Math.Abs(x - y) <= tolerance;
        public int GetHashCode(double obj) => 0;
    }
}
