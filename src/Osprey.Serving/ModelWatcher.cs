namespace Osprey.Serving;

/// <summary>
/// <c>watch=True</c>: loads the model file again when it changes (a trainer writing a new <c>best.safetensors</c>). File
/// events are debounced — the load starts once the file has been quiet for the debounce time — and a load that fails
/// (a file caught half-written, a corrupt one) is refused as any load is (a <see cref="ServeEventKind.LoadRefused"/>
/// event, the serving model stays) and tried again on the file's next change.
/// </summary>
public sealed class ModelWatcher : IDisposable
{
    readonly FileSystemWatcher watcher;
    readonly Timer debounce;
    readonly TimeSpan quiet;
    readonly Func<Task> reload;
    int disposed, changes;

    /// <param name="path">The file to watch.</param>
    /// <param name="quiet">How long the file must be unchanged before it is loaded.</param>
    /// <param name="reload">Loads it (its failures are the host's events; they do not stop the watching).</param>
    public ModelWatcher(string path, TimeSpan quiet, Func<Task> reload)
    {
        string full = Path.GetFullPath(path);
        string folder = Path.GetDirectoryName(full) ?? throw new ArgumentException($"'{path}' has no folder to watch.", nameof(path));
        this.quiet = quiet;
        this.reload = reload;
        debounce = new Timer(_ => Fire(), null, Timeout.Infinite, Timeout.Infinite);
        watcher = new FileSystemWatcher(folder, Path.GetFileName(full))
        {
            NotifyFilter = NotifyFilters.LastWrite | NotifyFilters.FileName | NotifyFilters.Size | NotifyFilters.CreationTime,
        };
        watcher.Changed += (_, _) => Touch();
        watcher.Created += (_, _) => Touch();
        watcher.Renamed += (_, e) =>
        {
            if (string.Equals(e.FullPath, full, StringComparison.Ordinal)) Touch();   // an atomic replace (write beside, rename over)
        };
        watcher.EnableRaisingEvents = true;
    }

    /// <summary>Changes seen so far (before debouncing).</summary>
    public int Changes => Volatile.Read(ref changes);

    void Touch()
    {
        Interlocked.Increment(ref changes);
        if (Volatile.Read(ref disposed) != 0) return;
        try
        {
            debounce.Change(quiet, Timeout.InfiniteTimeSpan);
        }
        catch (ObjectDisposedException)
        {
            // disposed meanwhile
        }
    }

    void Fire()
    {
        if (Volatile.Read(ref disposed) != 0) return;
        try
        {
            reload().GetAwaiter().GetResult();
        }
        catch (Exception)
        {
            // refused loads are reported by the host's events; the next change tries again
        }
    }

    /// <summary>Stops watching.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref disposed, 1) != 0) return;
        watcher.Dispose();
        debounce.Dispose();
    }
}
