using System.Diagnostics;
using OpenCvSharp;

namespace Osprey.Serving;

/// <summary>
/// The inference worker of one device: a dedicated thread that takes batches from the shared
/// <see cref="DynamicBatcher{T}"/>, leases the serving model once per batch (so a swap lands between batches, and the
/// old model lives until the batch on it is done), predicts the whole batch in one call and completes each item with its
/// prediction and the version that made it. A batch that fails fails its items only; the worker goes on. It stops when
/// the batcher is completed and drained.
/// </summary>
public sealed class InferenceWorker
{
    readonly DynamicBatcher<InferenceItem> batcher;
    readonly ModelHost models;
    readonly ServeMetrics metrics;
    readonly Thread thread;
    readonly TaskCompletionSource stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    long batches;

    /// <param name="batcher">Where the work comes from.</param>
    /// <param name="models">The serving model.</param>
    /// <param name="metrics">Batch sizes, queue waits, inference times and frame counts go here.</param>
    /// <param name="name">The thread's name.</param>
    public InferenceWorker(DynamicBatcher<InferenceItem> batcher, ModelHost models, ServeMetrics metrics, string name = "osprey-inference")
    {
        this.batcher = batcher;
        this.models = models;
        this.metrics = metrics;
        thread = new Thread(Run) { IsBackground = true, Name = name };
    }

    /// <summary>Completes when the thread has ended (after <see cref="DynamicBatcher{T}.Complete"/> and the last batch).</summary>
    public Task Completion => stopped.Task;

    /// <summary>Batches run so far.</summary>
    public long Batches => Interlocked.Read(ref batches);

    /// <summary>True once <see cref="Start"/> was called.</summary>
    public bool IsStarted => thread.ThreadState != System.Threading.ThreadState.Unstarted;

    /// <summary>Starts the thread.</summary>
    public void Start() => thread.Start();

    void Run()
    {
        try
        {
            while (batcher.TakeBatch() is { } batch) RunBatch(batch);
            stopped.TrySetResult();
        }
        catch (Exception e)
        {
            stopped.TrySetException(e);
        }
    }

    void RunBatch(IReadOnlyList<Dequeued<InferenceItem>> batch)
    {
        metrics.BatchSize.Observe(batch.Count);
        foreach (var item in batch) metrics.QueueWait.Observe(item.QueueWait.TotalSeconds);
        try
        {
            using var lease = models.Acquire();
            var images = new Mat[batch.Count];
            for (int i = 0; i < images.Length; i++) images[i] = batch[i].Item.Image;
            long start = Stopwatch.GetTimestamp();
            var predictions = lease.Model.Detector.Predict(images);
            var elapsed = Stopwatch.GetElapsedTime(start);
            metrics.Inference.Observe(elapsed.TotalSeconds);
            Interlocked.Increment(ref batches);
            for (int i = 0; i < batch.Count; i++)
            {
                var (item, wait) = batch[i];
                metrics.Frames.WithLabels(item.Origin).Inc();
                item.Complete(new InferenceResult(predictions[i], lease.Model.Info, wait, elapsed, batch.Count));
            }
        }
        catch (Exception e)
        {
            foreach (var item in batch) item.Item.Fail(e);
        }
    }
}
