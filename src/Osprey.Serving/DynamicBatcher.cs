namespace Osprey.Serving;

/// <summary>An item taken from a <see cref="DynamicBatcher{T}"/> with the time it waited in the queue.</summary>
public readonly record struct Dequeued<T>(T Item, TimeSpan QueueWait);

/// <summary>
/// A bounded queue that hands its items out in batches by Triton's dynamic batching rule (<see cref="BatchPolicy"/>): a
/// taker gets the largest batch available up to <see cref="MaxBatch"/>, waiting at most <see cref="MaxDelay"/> after the
/// oldest queued item's arrival for more. <see cref="TryEnqueue"/> refuses an item while <see cref="MaxQueue"/> wait, so
/// a caller can answer at once (HTTP 503) instead of queueing without bound. One batcher serves every producer (HTTP
/// requests now, streams later) and every inference worker takes from it. Thread-safe.
/// </summary>
public sealed class DynamicBatcher<T>
{
    readonly Queue<(T Item, long Enqueued)> queue = new();
    readonly object gate = new();
    readonly TimeProvider clock;
    bool completed;

    /// <param name="maxBatch">Largest batch (≥ 1).</param>
    /// <param name="maxDelay">Longest wait for a fuller batch, from the oldest item's arrival (≥ 0).</param>
    /// <param name="maxQueue">Items that may wait (≥ 1).</param>
    /// <param name="clock">Time source of the arrival stamps and decisions (<see cref="TimeProvider.System"/>).</param>
    public DynamicBatcher(int maxBatch, TimeSpan maxDelay, int maxQueue, TimeProvider? clock = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxQueue, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxDelay, TimeSpan.Zero);
        MaxBatch = maxBatch;
        MaxDelay = maxDelay;
        MaxQueue = maxQueue;
        this.clock = clock ?? TimeProvider.System;
    }

    /// <summary>Largest batch.</summary>
    public int MaxBatch { get; }

    /// <summary>Longest wait for a fuller batch.</summary>
    public TimeSpan MaxDelay { get; }

    /// <summary>Items that may wait.</summary>
    public int MaxQueue { get; }

    /// <summary>Items waiting now.</summary>
    public int Count
    {
        get { lock (gate) return queue.Count; }
    }

    /// <summary>True once <see cref="Complete"/> was called.</summary>
    public bool IsCompleted
    {
        get { lock (gate) return completed; }
    }

    /// <summary>Queues an item stamped with the current time; false when <see cref="MaxQueue"/> items wait or the batcher is completed.</summary>
    public bool TryEnqueue(T item)
    {
        lock (gate)
        {
            if (completed || queue.Count >= MaxQueue) return false;
            queue.Enqueue((item, clock.GetTimestamp()));
            Monitor.PulseAll(gate);
            return true;
        }
    }

    /// <summary>Refuses new items from now on; takers get what is queued (without waiting for fuller batches), then null.</summary>
    public void Complete()
    {
        lock (gate)
        {
            completed = true;
            Monitor.PulseAll(gate);
        }
    }

    /// <summary>
    /// Decides at the clock's current time, without blocking: returns the batch to run now, or null with how long to wait
    /// in <paramref name="wait"/> (<see cref="Timeout.InfiniteTimeSpan"/> when nothing is queued).
    /// </summary>
    public IReadOnlyList<Dequeued<T>>? Poll(out TimeSpan wait)
    {
        lock (gate) return PollLocked(out wait);
    }

    /// <summary>
    /// Blocks until a batch is due and returns it; null once the batcher is completed and empty.
    /// </summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellation"/> was cancelled.</exception>
    public IReadOnlyList<Dequeued<T>>? TakeBatch(CancellationToken cancellation = default)
    {
        using var wake = cancellation.Register(() =>
        {
            lock (gate) Monitor.PulseAll(gate);
        });
        lock (gate)
        {
            while (true)
            {
                cancellation.ThrowIfCancellationRequested();
                var batch = PollLocked(out var wait);
                if (batch is not null) return batch;
                if (completed) return null;
                if (wait == Timeout.InfiniteTimeSpan) Monitor.Wait(gate);
                else Monitor.Wait(gate, (int)Math.Ceiling(wait.TotalMilliseconds));   // round up: no spinning on a sub-ms rest
            }
        }
    }

    IReadOnlyList<Dequeued<T>>? PollLocked(out TimeSpan wait)
    {
        long now = clock.GetTimestamp();
        TimeSpan oldestAge = queue.Count > 0 ? clock.GetElapsedTime(queue.Peek().Enqueued, now) : TimeSpan.Zero;
        // once completed nothing more arrives: a fuller batch is not worth waiting for
        var decision = BatchPolicy.Decide(queue.Count, completed ? TimeSpan.MaxValue : oldestAge, MaxBatch, MaxDelay);
        wait = decision.Wait;
        if (decision.Take == 0) return null;
        var batch = new Dequeued<T>[decision.Take];
        for (int i = 0; i < batch.Length; i++)
        {
            var (item, enqueued) = queue.Dequeue();
            batch[i] = new Dequeued<T>(item, clock.GetElapsedTime(enqueued, now));
        }
        return batch;
    }
}
