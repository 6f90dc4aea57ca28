using OpenCvSharp;
using Osprey.Inference;
using Osprey.Tests.Models;
using static Osprey.Tests.Inference.PredictVideoFiles;

namespace Osprey.Tests.Sources;

/// <summary>
/// stream_buffer on an MJPEG camera served from 127.0.0.1 that sends numbered grey frames faster than the predictor
/// takes them (the progress callback sleeps): the frames in the written video show which were predicted.
/// </summary>
public class PredictStreamBufferTests
{
    [Fact]
    public void WithoutBufferASlowPredictorGetsFewerFramesAlwaysNewer()
    {
        string dir = TestModels.TempDir();
        try
        {
            const int sent = 40;
            using var server = new HttpTestServer(HttpTestServer.Mjpeg(HttpTestServer.NumberedFrames(sent, 64, 48), "frame",
                contentLength: true, interval: TimeSpan.FromMilliseconds(15)));
            string url = server.Root + "cam";
            var report = PredictRun.Run(Args(dir, url, ("conf", "1.0")), _ => Thread.Sleep(120));

            var numbers = Numbers(Path.Combine(report.RunDirectory, "cam.avi"));
            Assert.Equal(report.Images, numbers.Count);
            Assert.InRange(numbers.Count, 2, sent / 2); // 120 ms a frame against a frame every 15 ms
            for (int i = 1; i < numbers.Count; i++) Assert.True(numbers[i] > numbers[i - 1], $"frames out of order: {string.Join(",", numbers)}");
            Assert.Equal(sent, numbers[^1]);             // the last frame sent is the newest when the stream ends
            Assert.Contains(report.Lines, l => l.StartsWith($"{url}: {numbers.Count} frames (MJPEG over HTTP, the server closed the stream; " +
                $"{sent - numbers.Count} of {sent} frames dropped: stream_buffer=False predicts the newest)", StringComparison.Ordinal));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void WithBufferEveryFrameIsPredictedInOrder()
    {
        string dir = TestModels.TempDir();
        try
        {
            const int sent = 16;
            using var server = new HttpTestServer(HttpTestServer.Mjpeg(HttpTestServer.NumberedFrames(sent, 64, 48), "frame",
                contentLength: false, interval: TimeSpan.FromMilliseconds(5)));
            string url = server.Root + "cam";
            var report = PredictRun.Run(Args(dir, url, ("conf", "1.0"), ("stream_buffer", "True")), _ => Thread.Sleep(40));

            Assert.Equal(Enumerable.Range(1, sent), Numbers(Path.Combine(report.RunDirectory, "cam.avi")));
            Assert.Contains($"{url}: {sent} frames (MJPEG over HTTP, the server closed the stream) → {Path.Combine(report.RunDirectory, "cam.avi")}", report.Lines);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static List<int> Numbers(string video)
    {
        var frames = Frames(video);
        var numbers = frames.Select(HttpTestServer.FrameNumber).ToList();
        foreach (var frame in frames) frame.Dispose();
        return numbers;
    }
}
