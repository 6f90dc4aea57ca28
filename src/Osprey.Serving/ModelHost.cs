using OpenCvSharp;
using Osprey.Inference;

namespace Osprey.Serving;

/// <summary>Opens a detector for a model path (in a server: <see cref="Detectors.Open"/> with the server's backend, options and device).</summary>
public delegate IDetector DetectorFactory(string path);

/// <summary>
/// Holds the model a server answers with and swaps it without stopping. <see cref="LoadAsync"/> loads a new model and
/// warms it up (one prediction on a blank image at its input size) on a background thread while the current one keeps
/// serving, checks that it has the current model's class count, then makes it current with one atomic reference swap: a
/// batch leases the model once (<see cref="Acquire"/>), so every batch runs wholly on the old or wholly on the new one, and
/// the old detector is disposed when the last batch holding it finishes. Versions count up from 1 with every successful
/// load; a refused load (<see cref="ModelLoadException"/>) changes nothing. Loads run one at a time.
/// </summary>
public sealed class ModelHost : IDisposable
{
    readonly DetectorFactory factory;
    readonly SemaphoreSlim loading = new(1, 1);
    ServedModel? current;
    int version;
    bool disposed;

    /// <param name="factory">Opens a detector for a path.</param>
    public ModelHost(DetectorFactory factory) => this.factory = factory;

    /// <summary>Raised after every load, swap and refused load (on the loading thread).</summary>
    public event Action<ServeEvent>? Events;

    /// <summary>The serving model's description; null before the first load.</summary>
    public ModelInfo? Current => Volatile.Read(ref current)?.Info;

    /// <summary>Successful loads so far (the first included).</summary>
    public int Loads => Volatile.Read(ref version);

    /// <summary>
    /// Leases the serving model for one batch: it is not disposed before the lease is, even if a swap replaces it meanwhile.
    /// </summary>
    /// <exception cref="InvalidOperationException">No model was loaded yet, or the host is disposed.</exception>
    public ModelLease Acquire()
    {
        while (true)
        {
            var model = Volatile.Read(ref current) ?? throw new InvalidOperationException("no model is loaded (or the host is disposed).");
            if (model.TryAcquire()) return new ModelLease(model);
            // swapped and released between the read and the acquire: the new one is current now
        }
    }

    /// <summary>
    /// Loads <paramref name="path"/> (any format <c>model=</c> takes), warms it up and makes it the serving model; returns
    /// its description. Waits for a load already running.
    /// </summary>
    /// <exception cref="ModelLoadException">Missing (404), not loadable or failed warm-up (422), another class count than the
    /// serving model's (422), or a bad path (400); the serving model keeps serving.</exception>
    public async Task<ModelInfo> LoadAsync(string path, CancellationToken cancellation = default)
    {
        if (string.IsNullOrWhiteSpace(path)) throw new ModelLoadException(ModelLoadFailure.BadRequest, "no model path given.");
        await loading.WaitAsync(cancellation).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            var detector = await Task.Factory.StartNew(() => Open(path), cancellation, TaskCreationOptions.LongRunning,
                TaskScheduler.Default).ConfigureAwait(false);
            return Swap(detector, path);
        }
        catch (ModelLoadException e)
        {
            Events?.Invoke(new ServeEvent(ServeEventKind.LoadRefused, e.Message, Current));
            throw;
        }
        finally
        {
            loading.Release();
        }
    }

    // Opens, checks and warms up a detector; any failure is a ModelLoadException naming the file.
    IDetector Open(string path)
    {
        IDetector detector;
        try
        {
            detector = factory(path);
        }
        catch (Exception e)
        {
            throw Refusal(path, e);
        }
        try
        {
            if (Volatile.Read(ref current) is { } serving && serving.Info.Names.Count != detector.Names.Count)
                throw new ModelLoadException(ModelLoadFailure.Incompatible,
                    $"'{path}' has {detector.Names.Count} classes but the serving model v{serving.Info.Version} ('{serving.Info.Path}') has " +
                    $"{serving.Info.Names.Count}: a server answers with one class list; restart it to serve another.");
            WarmUp(detector, path);
            return detector;
        }
        catch
        {
            detector.Dispose();
            throw;
        }
    }

    static void WarmUp(IDetector detector, string path)
    {
        int size = detector.Options.ImageSize;
        using var blank = new Mat(size, size, MatType.CV_8UC3, new Scalar(114, 114, 114));
        try
        {
            detector.Predict(new[] { blank });
        }
        catch (Exception e)
        {
            throw new ModelLoadException(ModelLoadFailure.Invalid, $"'{path}' loaded but its warm-up prediction failed: {e.Message}", e);
        }
    }

    static ModelLoadException Refusal(string path, Exception e) => e switch
    {
        ModelLoadException load => load,
        // the file itself is missing: 404; something it needs is (a weights file's architecture YAML): 422
        FileNotFoundException or DirectoryNotFoundException => new ModelLoadException(
            File.Exists(path) ? ModelLoadFailure.Invalid : ModelLoadFailure.NotFound,
            e.Message.Contains(path, StringComparison.Ordinal) ? e.Message : $"'{path}': {e.Message}", e),
        ArgumentException => new ModelLoadException(ModelLoadFailure.BadRequest, $"'{path}': {e.Message}", e),
        _ => new ModelLoadException(ModelLoadFailure.Invalid, $"'{path}' is not a model Osprey can load: {e.Message}", e),
    };

    ModelInfo Swap(IDetector detector, string path)
    {
        if (disposed)
        {
            detector.Dispose();
            throw new ObjectDisposedException(nameof(ModelHost));
        }
        var info = new ModelInfo(version + 1, path, detector.Backend, DateTimeOffset.UtcNow, detector.Names, detector.Options.ImageSize)
        {
            OnnxExport = (detector as ExportedDetector)?.OnnxPath,
        };
        var next = new ServedModel(detector, info);
        var previous = Interlocked.Exchange(ref current, next);
        Volatile.Write(ref version, info.Version);
        previous?.Release();   // disposed now, or by the last batch still running on it
        Events?.Invoke(previous is null
            ? new ServeEvent(ServeEventKind.Loaded, $"loaded v{info.Version} {path} ({Runs(info)}, {info.Names.Count} classes, imgsz {info.ImageSize})", info)
            : new ServeEvent(ServeEventKind.Swapped, $"swapped v{previous.Info.Version} → v{info.Version} {path}", info));
        return info;
    }

    static string Runs(ModelInfo info) => info.OnnxExport is { } onnx ? $"{info.Backend} on its export {onnx}" : info.Backend;

    /// <summary>Lets the serving model go (disposed once no batch holds it); waits for a running load to finish first.</summary>
    public void Dispose()
    {
        loading.Wait();
        try
        {
            if (disposed) return;
            disposed = true;
            Interlocked.Exchange(ref current, null)?.Release();
        }
        finally
        {
            loading.Release();
        }
    }
}
