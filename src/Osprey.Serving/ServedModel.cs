using Osprey.Inference;

namespace Osprey.Serving;

/// <summary>What a server has loaded: the version that answers, where it came from and since when.</summary>
/// <param name="Version">Counts up from 1 with every successful load.</param>
/// <param name="Path">The path it was loaded from, as given.</param>
/// <param name="Backend">torch or onnxruntime.</param>
/// <param name="LoadedAt">When it started serving.</param>
/// <param name="Names">Its class names.</param>
/// <param name="ImageSize">Its input size.</param>
public sealed record ModelInfo(int Version, string Path, string Backend, DateTimeOffset LoadedAt, IReadOnlyList<string> Names, int ImageSize)
{
    /// <summary>The ONNX file the server exported from <see cref="Path"/> and serves in ONNX Runtime (<see cref="ServeBackend"/>); null when it serves the file itself.</summary>
    public string? OnnxExport { get; init; }
}

/// <summary>
/// A loaded detector with its <see cref="ModelInfo"/> and a reference count: the <see cref="ModelHost"/> holds one
/// reference while the model is current and every batch holds one (<see cref="ModelLease"/>) while it runs, so a swapped-out
/// detector is disposed by whichever lets go last — the host at the swap, or the batch still running on it.
/// </summary>
public sealed class ServedModel
{
    int references = 1;   // the host's

    internal ServedModel(IDetector detector, ModelInfo info)
    {
        Detector = detector;
        Info = info;
    }

    /// <summary>The detector (not thread-safe: one inference worker uses it at a time).</summary>
    public IDetector Detector { get; }

    /// <summary>Version, path, load time.</summary>
    public ModelInfo Info { get; }

    /// <summary>True once the last reference was let go and the detector disposed.</summary>
    public bool IsDisposed => Volatile.Read(ref references) == 0;

    /// <summary>Takes a reference unless the model is already disposed.</summary>
    internal bool TryAcquire()
    {
        while (true)
        {
            int count = Volatile.Read(ref references);
            if (count == 0) return false;
            if (Interlocked.CompareExchange(ref references, count + 1, count) == count) return true;
        }
    }

    /// <summary>Lets a reference go; the last one disposes the detector.</summary>
    internal void Release()
    {
        int left = Interlocked.Decrement(ref references);
        if (left == 0) Detector.Dispose();
        else if (left < 0) throw new InvalidOperationException($"model v{Info.Version} released more often than acquired.");
    }
}

/// <summary>
/// One batch's hold on a <see cref="ServedModel"/>: the model stays alive (not disposed by a swap) until the lease is
/// disposed.
/// </summary>
public sealed class ModelLease : IDisposable
{
    int released;

    internal ModelLease(ServedModel model) => Model = model;

    /// <summary>The leased model.</summary>
    public ServedModel Model { get; }

    /// <summary>Lets the model go.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref released, 1) == 0) Model.Release();
    }
}
