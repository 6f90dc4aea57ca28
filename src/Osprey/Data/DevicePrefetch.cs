using static TorchSharp.torch;

namespace Osprey.Data;

/// <summary>
/// Keeps one batch in flight to the device: when the consumer takes batch k, the copy of batch k + 1 has already been
/// started (non-blocking, from pinned memory when the loader pins), so the host never waits on a pageable copy and the
/// next batch's transfer is queued before the current step's work.
/// </summary>
/// <remarks>
/// TorchSharp 0.107 exposes no CUDA streams, so the copies run on the current stream, in order with the compute: what
/// this buys is a host that never blocks on a copy (a pageable host-to-device copy waits for the stream to drain) and
/// a transfer issued while the loader prepares the batch after it. The trainer uses it on CUDA with pinned memory only
/// (<see cref="Training.TrainingSetup.PinMemory"/>); on the CPU the batches go straight from the loader to the step.
/// </remarks>
public static class DevicePrefetch
{
    /// <summary>The batches of <paramref name="source"/>, each already on its way to <paramref name="device"/>.</summary>
    public static IEnumerable<Batch> Ahead(IEnumerable<Batch> source, Device device)
    {
        using var items = source.GetEnumerator();
        Batch? next = Take(items, device);
        try
        {
            while (next is not null)
            {
                Batch current = next;
                next = null;
                next = Take(items, device);       // batch k + 1 starts its copy before batch k's step
                yield return current;
            }
        }
        finally
        {
            next?.Dispose();                      // the consumer stopped early: the batch in flight is ours
        }
    }

    static Batch? Take(IEnumerator<Batch> items, Device device)
    {
        if (!items.MoveNext()) return null;
        Batch batch = items.Current;
        try
        {
            batch.CopyTo(device);
            return batch;
        }
        catch
        {
            batch.Dispose();
            throw;
        }
    }
}
