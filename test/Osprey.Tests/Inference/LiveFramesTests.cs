using OpenCvSharp;
using Osprey.Inference;

namespace Osprey.Tests.Inference;

/// <summary>
/// <see cref="LiveFrames"/> (Ultralytics' LoadStreams) on a source the test releases frame by frame, so that which frame
/// the predictor gets does not depend on timing: the newest without a buffer, each in order with one (at most 30
/// waiting), every vid_stride-th after the first, the last one still taken after the stream ends.
/// </summary>
public class LiveFramesTests
{
    [Fact]
    public void WithoutBufferTheNewestFrameIsTakenAndTheOthersDropped()
    {
        var source = new ReleasedFrames();
        source.Release(1);
        using var live = new LiveFrames(source, "cam", stride: 1, buffer: false);
        source.Release(4);                      // frames 2 … 5 arrive while the predictor is busy
        WaitFor(() => live.Read == 5 && source.Waiting);
        Assert.Equal(5, Number(live.Take()));   // the newest; 1 … 4 dropped
        Assert.Equal(4, live.Dropped);
        source.Release(3);
        WaitFor(() => live.Read == 8 && source.Waiting);
        Assert.Equal(8, Number(live.Take()));
        source.Release(1);
        WaitFor(() => live.Read == 9 && source.Waiting);
        source.End();                           // the stream ends with frame 9 not yet predicted: it is still taken
        Assert.Equal(9, Number(live.Take()));
        Assert.Null(live.Take());
        Assert.Equal(6, live.Dropped);
    }

    [Fact]
    public void WithBufferEveryFrameIsTakenInOrderAndAtMost30Wait()
    {
        var source = new ReleasedFrames();
        source.Release(40);
        using var live = new LiveFrames(source, "cam", stride: 1, buffer: true);
        WaitFor(() => live.Read == LiveFrames.BufferFrames);
        Thread.Sleep(200);
        Assert.Equal(30, live.Read);            // the reader waits while 30 frames wait
        Assert.Equal(1, Number(live.Take()));
        WaitFor(() => live.Read == 31);
        var numbers = new List<int>();
        for (int k = 2; k <= 40; k++) numbers.Add(Number(live.Take()));
        Assert.Equal(Enumerable.Range(2, 39), numbers);
        source.End();
        Assert.Null(live.Take());
        Assert.Equal(0, live.Dropped);
    }

    [Fact]
    public void VidStrideKeepsTheFirstFrameThenEveryStrideTh()
    {
        var source = new ReleasedFrames();
        source.Release(11);
        using var live = new LiveFrames(source, "cam", stride: 3, buffer: true);
        WaitFor(() => live.Read == 4 && source.Waiting);
        source.End();
        var numbers = new List<int>();
        while (live.Take() is { } frame) numbers.Add(Number(frame));
        Assert.Equal(new[] { 1, 4, 7, 10 }, numbers); // Ultralytics: the first frame, then n % vid_stride == 0 after it
    }

    [Fact]
    public void AReaderErrorReachesThePredictorAfterTheFramesBeforeIt()
    {
        var source = new ReleasedFrames { FailAt = 3 };
        source.Release(5);
        using var live = new LiveFrames(source, "cam", stride: 1, buffer: true);
        Assert.Equal(1, Number(live.Take()));
        Assert.Equal(2, Number(live.Take()));
        var e = Assert.Throws<InvalidDataException>(() => live.Take());
        Assert.Equal("frame 3 is broken", e.Message);
    }

    [Fact]
    public void AStreamWithoutAFirstFrameIsAnError()
    {
        var source = new ReleasedFrames();
        source.End();
        var e = Assert.Throws<InvalidDataException>(() => new LiveFrames(source, "rtsp://cam/live", stride: 1, buffer: false));
        Assert.Equal("rtsp://cam/live: no frame could be read from this stream (released frames).", e.Message);
    }

    private static int Number(Mat? frame)
    {
        Assert.NotNull(frame);
        using (frame) return frame.At<byte>(0, 0);
    }

    private static void WaitFor(Func<bool> condition)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), "timed out waiting for the reader");
            Thread.Sleep(5);
        }
    }

    /// <summary>Frames 1, 2, … (a 1x1 grey image of that value), each given out only once the test has released it.</summary>
    private sealed class ReleasedFrames : IFrameSource
    {
        private readonly SemaphoreSlim released = new(0);
        private volatile bool ended;
        private volatile bool waiting;
        private int number;

        public int FailAt { get; init; } = -1;

        /// <summary>True while the reader waits for a frame not yet released.</summary>
        public bool Waiting => waiting;

        public string Description => "released frames";

        public void Release(int frames) => released.Release(frames);

        public void End()
        {
            ended = true;
            released.Release();
        }

        public bool Next(int stride, Mat frame)
        {
            for (int i = 0; i < stride; i++)
            {
                if (released.CurrentCount == 0) waiting = true;
                released.Wait();
                waiting = false;
                if (ended && released.CurrentCount == 0) return false;
                number++;
            }
            if (number == FailAt) throw new InvalidDataException($"frame {number} is broken");
            using var value = new Mat(1, 1, MatType.CV_8UC1, Scalar.All(number));
            value.CopyTo(frame);
            return true;
        }

        public void Stop() => End();

        public void Dispose() => released.Dispose();
    }
}
