using OpenCvSharp;
using Osprey.Sources;

namespace Osprey.Tests.Sources;

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
    public async Task WithoutBufferEncodedFramesWaitEncodedAndOnlyTheOnesTakenAreDecoded()
    {
        var source = new EncodedFrames();
        source.Release(1);
        using var live = new LiveFrames(source, "cam", stride: 1, buffer: false);
        Assert.Equal(1, source.Decodes);        // the first frame, read when the stream opens
        source.Release(9);                      // frames 2 … 10 arrive while the predictor is busy
        WaitFor(() => live.Read == 10 && source.Waiting);
        Assert.Equal(1, source.Decodes);        // none of them decoded yet
        Assert.Equal(10, Number(live.Take()));
        Assert.Equal((2, 9), (source.Decodes, live.Dropped));   // only the one taken; 1 … 9 dropped undecoded

        source.Undecodable = 11;                // the newest is not an image: skipped for the next one
        source.Release(1);
        WaitFor(() => live.Read == 11 && source.Waiting);
        var taking = Task.Run(() => Number(live.Take()));
        WaitFor(() => source.Decodes == 3);
        Assert.False(taking.IsCompleted);
        source.Release(1);
        Assert.Equal(12, await taking.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(4, source.Decodes);
        source.End();
        Assert.Null(live.Take());
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

    [Fact]
    public void AStreamThatEndsOrBreaksIsReopenedAndNumbersGoOn()
    {
        var first = new ReleasedFrames { FailAt = 4 };      // breaks at its 4th frame
        first.Release(4);
        var second = new ReleasedFrames { Start = 100 };   // ends cleanly after two frames
        second.Release(2);
        var third = new ReleasedFrames { Start = 200 };
        third.Release(1);
        var next = new Queue<IFrameSource>(new IFrameSource[] { second, third });
        int opened = 0;
        var reconnection = new Reconnection(() => { opened++; return next.Dequeue(); }, Attempts: 2, Delay: TimeSpan.FromMilliseconds(10));
        using var live = new LiveFrames(first, "rtsp://cam/live", stride: 1, buffer: true, reconnection);
        var numbers = new List<int> { Number(live.Take()), Number(live.Take()), Number(live.Take()) };
        numbers.Add(Number(live.Take()));                  // 101: the break at frame 4 reopened the stream
        numbers.Add(Number(live.Take()));
        second.End();                                      // a clean end reopens too (as Ultralytics' reader does)
        numbers.Add(Number(live.Take()));
        Assert.Equal(new[] { 1, 2, 3, 101, 102, 201 }, numbers);
        Assert.Equal(2, live.Reconnects);
        Assert.Equal(2, opened);
        Assert.Equal("released frames; reopened 2 times", live.Description);
        third.End();                                       // then nothing to reopen: two failed attempts end it
        Assert.Null(live.Take());
        Assert.Equal(4, opened);
        Assert.StartsWith("released frames; not reopened after 2 attempts", live.Description);
        Assert.EndsWith("; reopened 2 times", live.Description);
    }

    [Fact]
    public void AStreamThatCannotBeReopenedEndsAfterTheAttemptsSayingWhy()
    {
        var source = new ReleasedFrames();
        source.Release(2);
        int attempts = 0;
        var reconnection = new Reconnection(() =>
        {
            attempts++;
            throw new InvalidDataException("no server answers at cam:554.");
        }, Attempts: 3, Delay: TimeSpan.FromMilliseconds(10));
        using var live = new LiveFrames(source, "rtsp://cam/live", stride: 1, buffer: true, reconnection);
        Assert.Equal(1, Number(live.Take()));
        Assert.Equal(2, Number(live.Take()));
        source.End();
        Assert.Null(live.Take());                          // no exception: the stream ended
        Assert.Equal(3, attempts);
        Assert.Equal(0, live.Reconnects);
        Assert.Equal("released frames; not reopened after 3 attempts 0 s apart (no server answers at cam:554.)", live.Description);
    }

    [Fact]
    public void AStreamThatOpensButNeverSendsAFrameEndsAfterTheAttempts()
    {
        var source = new ReleasedFrames();
        source.Release(1);
        var reconnection = new Reconnection(() =>
        {
            var empty = new ReleasedFrames();          // answers, then ends before its first frame
            empty.End();
            return empty;
        }, Attempts: 3, Delay: TimeSpan.FromMilliseconds(10));
        using var live = new LiveFrames(source, "rtsp://cam/live", stride: 1, buffer: true, reconnection);
        Assert.Equal(1, Number(live.Take()));
        source.End();
        Assert.Null(live.Take());                      // ended: the three openings gave no frame
        Assert.Equal(3, live.Reconnects);
        Assert.Equal("released frames; not reopened after 3 attempts 0 s apart (released frames); reopened 3 times", live.Description);
    }

    [Fact]
    public void DisposeDoesNotWaitForAReconnection()
    {
        // waiting out the delay
        var source = new ReleasedFrames();
        source.Release(1);
        var live = new LiveFrames(source, "rtsp://cam/live", stride: 1, buffer: true,
            new Reconnection(() => throw new InvalidOperationException("not reached"), Attempts: 5, Delay: TimeSpan.FromSeconds(30)));
        Assert.Equal(1, Number(live.Take()));
        source.End();
        Thread.Sleep(100);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        live.Dispose();
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"Dispose took {clock.Elapsed} during the delay");

        // inside an Open that blocks (a connect that hangs): the reader disposes what it opens once Open returns
        var first = new ReleasedFrames();
        first.Release(1);
        using var hang = new ManualResetEventSlim();
        var opened = new ReleasedFrames();
        var entered = new ManualResetEventSlim();
        live = new LiveFrames(first, "rtsp://cam/live", stride: 1, buffer: true, new Reconnection(() =>
        {
            entered.Set();
            hang.Wait(TimeSpan.FromSeconds(30));
            return opened;
        }, Attempts: 1, Delay: TimeSpan.Zero));
        Assert.Equal(1, Number(live.Take()));
        first.End();
        Assert.True(entered.Wait(TimeSpan.FromSeconds(10)), "the reader never reopened");
        clock.Restart();
        live.Dispose();
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"Dispose took {clock.Elapsed} during Open");
        hang.Set();
        WaitFor(() => opened.Disposed);
    }

    [Theory]
    [InlineData(null, Reconnection.DefaultAttempts)]
    [InlineData("", Reconnection.DefaultAttempts)]
    [InlineData("0", 0)]
    [InlineData(" 5 ", 5)]
    public void TheVariableGivesTheAttempts(string? text, int attempts) => Assert.Equal(attempts, Reconnection.AttemptsOf(text));

    [Theory]
    [InlineData("-1")]
    [InlineData("many")]
    public void ABadVariableIsAClearError(string text)
    {
        var e = Assert.Throws<Osprey.Config.ArgumentsException>(() => Reconnection.AttemptsOf(text));
        Assert.Contains($"OSPREY_STREAM_RECONNECT={text}", e.Message);
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

    /// <summary><see cref="ReleasedFrames"/> given out encoded (a byte of the number), counting the frames decoded.</summary>
    private sealed class EncodedFrames : IFrameSource, IEncodedFrames
    {
        private readonly ReleasedFrames inner = new();
        private int decodes;

        public int Decodes => Volatile.Read(ref decodes);
        public int Undecodable { get; set; } = -1;
        public bool Waiting => inner.Waiting;
        public string Description => inner.Description;

        public void Release(int frames) => inner.Release(frames);

        public void End() => inner.End();

        public byte[]? NextEncoded(int stride)
        {
            using var frame = new Mat();
            return inner.Next(stride, frame) ? new[] { (byte)Number(frame) } : null;
        }

        public bool Decode(byte[] encoded, Mat frame)
        {
            Interlocked.Increment(ref decodes);
            if (encoded[0] == Undecodable) return false;
            using var value = new Mat(1, 1, MatType.CV_8UC1, Scalar.All(encoded[0]));
            value.CopyTo(frame);
            return true;
        }

        public bool Next(int stride, Mat frame)
        {
            for (var encoded = NextEncoded(stride); encoded is not null; encoded = NextEncoded(1))
                if (Decode(encoded, frame)) return true;
            return false;
        }

        public void Stop() => inner.Stop();

        public void Dispose() => inner.Dispose();
    }

    /// <summary>Frames 1, 2, … (a 1x1 grey image of that value), each given out only once the test has released it.</summary>
    private sealed class ReleasedFrames : IFrameSource
    {
        private readonly SemaphoreSlim released = new(0);
        private volatile bool ended;
        private volatile bool waiting;
        private int number;

        public int FailAt { get; init; } = -1;

        /// <summary>The number before the first frame (frames are Start + 1, Start + 2, …).</summary>
        public int Start { init => number = value; }

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

        public bool Disposed { get; private set; }

        public void Dispose()
        {
            Disposed = true;
            released.Dispose();
        }
    }
}
