using System.Diagnostics;
using Osprey.Serving;

namespace Osprey.Tests.Serving;

/// <summary>A clock that moves only when told (ticks of 100 ns).</summary>
internal sealed class ManualClock : TimeProvider
{
    long ticks;

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;
    public override long GetTimestamp() => Interlocked.Read(ref ticks);

    /// <summary>Sets the time to <paramref name="ms"/> milliseconds after the start.</summary>
    public void At(double ms) => Interlocked.Exchange(ref ticks, (long)Math.Round(ms * TimeSpan.TicksPerMillisecond));
}

/// <summary>Triton's dynamic batching rule, by hand-computed cases, and the batcher's queue bound.</summary>
public class DynamicBatcherTests
{
    static TimeSpan Ms(double ms) => TimeSpan.FromMilliseconds(ms);

    [Theory]
    // queued, oldest age (ms), max batch, max delay (ms) → take, wait (ms; -1 = until an item arrives)
    [InlineData(0, 0, 4, 10, 0, -1)]      // nothing queued: wait for the first item
    [InlineData(1, 0, 4, 10, 0, 10)]      // one fresh item: wait the whole delay
    [InlineData(3, 3, 4, 10, 0, 7)]       // items at t=0,2,3 decided at t=3: 10 − 3 = 7 ms more
    [InlineData(3, 10, 4, 10, 3, 0)]      // … at t=10: the 3 go
    [InlineData(3, 25, 4, 10, 3, 0)]      // the worker was busy past the delay: go at once with what is there
    [InlineData(4, 0, 4, 10, 4, 0)]       // a full batch goes at once
    [InlineData(5, 0, 4, 10, 4, 0)]       // more than a batch: the largest batch
    [InlineData(1, 0, 4, 0, 1, 0)]        // no delay: whatever is there
    [InlineData(2, 0, 1, 10, 1, 0)]       // max_batch 1: one at a time, no waiting
    public void DecideFollowsTritonsRule(int queued, double ageMs, int maxBatch, double delayMs, int take, double waitMs)
    {
        var decision = BatchPolicy.Decide(queued, Ms(ageMs), maxBatch, Ms(delayMs));
        Assert.Equal(take, decision.Take);
        Assert.Equal(waitMs < 0 ? Timeout.InfiniteTimeSpan : Ms(waitMs), decision.Wait);
    }

    [Fact]
    public void ItemsAt0And2And3GoAsOneBatchOf3At10()
    {
        var clock = new ManualClock();
        var batcher = new DynamicBatcher<string>(maxBatch: 4, maxDelay: Ms(10), maxQueue: 8, clock);
        Assert.Null(batcher.Poll(out var idle));
        Assert.Equal(Timeout.InfiniteTimeSpan, idle);
        clock.At(0); Assert.True(batcher.TryEnqueue("a"));
        clock.At(2); Assert.True(batcher.TryEnqueue("b"));
        clock.At(3); Assert.True(batcher.TryEnqueue("c"));
        Assert.Null(batcher.Poll(out var wait));
        Assert.Equal(Ms(7), wait);
        clock.At(9.9);
        Assert.Null(batcher.Poll(out wait));
        Assert.Equal(Ms(0.1), wait);
        clock.At(10);
        var batch = batcher.Poll(out _);
        Assert.NotNull(batch);
        Assert.Equal(new[] { "a", "b", "c" }, batch.Select(d => d.Item));
        Assert.Equal(new[] { Ms(10), Ms(8), Ms(7) }, batch.Select(d => d.QueueWait));   // each item's own wait
        Assert.Equal(0, batcher.Count);
    }

    [Fact]
    public void FiveQueuedGoAsFourAtOnceThenOneAfterItsDelay()
    {
        var clock = new ManualClock();
        var batcher = new DynamicBatcher<int>(maxBatch: 4, maxDelay: Ms(10), maxQueue: 8, clock);
        for (int i = 0; i < 5; i++) Assert.True(batcher.TryEnqueue(i));
        var first = batcher.Poll(out _);
        Assert.Equal(new[] { 0, 1, 2, 3 }, first!.Select(d => d.Item));
        Assert.Null(batcher.Poll(out var wait));       // the fifth arrived at t=0: it waits until t=10 for company
        Assert.Equal(Ms(10), wait);
        clock.At(4);
        Assert.True(batcher.TryEnqueue(5));
        Assert.Null(batcher.Poll(out wait));
        Assert.Equal(Ms(6), wait);                     // still counted from the oldest (t=0), not the newest
        clock.At(10);
        Assert.Equal(new[] { 4, 5 }, batcher.Poll(out _)!.Select(d => d.Item));
    }

    [Fact]
    public void AFullQueueRefusesUntilItIsTaken()
    {
        var clock = new ManualClock();
        var batcher = new DynamicBatcher<int>(maxBatch: 2, maxDelay: Ms(10), maxQueue: 3, clock);
        Assert.True(batcher.TryEnqueue(1));
        Assert.True(batcher.TryEnqueue(2));
        Assert.True(batcher.TryEnqueue(3));
        Assert.False(batcher.TryEnqueue(4));
        Assert.Equal(3, batcher.Count);
        Assert.Equal(new[] { 1, 2 }, batcher.Poll(out _)!.Select(d => d.Item));
        Assert.True(batcher.TryEnqueue(5));           // 3, 5
        Assert.True(batcher.TryEnqueue(6));           // 3, 5, 6: full again
        Assert.False(batcher.TryEnqueue(7));
        Assert.Equal(new[] { 3, 5 }, batcher.Poll(out _)!.Select(d => d.Item));
    }

    [Fact]
    public void CompleteRefusesNewItemsAndDrainsWithoutWaiting()
    {
        var clock = new ManualClock();
        var batcher = new DynamicBatcher<int>(maxBatch: 4, maxDelay: Ms(1000), maxQueue: 8, clock);
        Assert.True(batcher.TryEnqueue(1));
        Assert.True(batcher.TryEnqueue(2));
        batcher.Complete();
        Assert.False(batcher.TryEnqueue(3));
        Assert.Equal(new[] { 1, 2 }, batcher.TakeBatch()!.Select(d => d.Item));   // no 1 s wait: nothing more can come
        Assert.Null(batcher.TakeBatch());
    }

    [Fact]
    public async Task TakeBatchBlocksUntilTheDelayAfterTheOldestItem()
    {
        // real time: max_delay 300 ms; items at about 0, 50 and 100 ms → one batch of 3, not before 300 ms after the first
        var batcher = new DynamicBatcher<int>(maxBatch: 4, maxDelay: Ms(300), maxQueue: 8);
        var clock = Stopwatch.StartNew();
        var producer = Task.Run(async () =>
        {
            batcher.TryEnqueue(0);
            await Task.Delay(50);
            batcher.TryEnqueue(1);
            await Task.Delay(50);
            batcher.TryEnqueue(2);
        });
        var batch = batcher.TakeBatch();
        var elapsed = clock.Elapsed;
        await producer;
        Assert.Equal(new[] { 0, 1, 2 }, batch!.Select(d => d.Item));
        Assert.True(elapsed >= Ms(299), $"dispatched after {elapsed.TotalMilliseconds:0} ms, before the 300 ms delay");
        Assert.True(elapsed < Ms(2000), $"dispatched after {elapsed.TotalMilliseconds:0} ms");
        Assert.True(batch![0].QueueWait >= Ms(299), $"the oldest waited {batch[0].QueueWait.TotalMilliseconds:0} ms");

        // a full batch does not wait
        clock.Restart();
        for (int i = 0; i < 4; i++) batcher.TryEnqueue(10 + i);
        Assert.Equal(4, batcher.TakeBatch()!.Count);
        Assert.True(clock.Elapsed < Ms(250), $"a full batch waited {clock.Elapsed.TotalMilliseconds:0} ms");
    }

    [Fact]
    public void TakeBatchStopsOnCancellation()
    {
        var batcher = new DynamicBatcher<int>(maxBatch: 4, maxDelay: Ms(5), maxQueue: 8);
        using var cancel = new CancellationTokenSource(Ms(100));
        Assert.Throws<OperationCanceledException>(() => batcher.TakeBatch(cancel.Token));
    }
}
