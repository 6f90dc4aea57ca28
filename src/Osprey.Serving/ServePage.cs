namespace Osprey.Serving;

/// <summary>
/// The page at <c>/</c>: plain HTML and JavaScript (Page/index.html, embedded in this assembly, no build step) showing
/// the streams as a grid of live annotated views (each tile an <c>&lt;img&gt;</c> on the stream's MJPEG out) with their fps
/// and latency (polled from <c>GET /v1/streams</c>), the serving model, a form that adds a stream and one that loads weights.
/// </summary>
internal static class ServePage
{
    /// <summary>The page's HTML.</summary>
    public static string Html { get; } = Load();

    static string Load()
    {
        const string Name = "Osprey.Serving.Page.index.html";
        using var stream = typeof(ServePage).Assembly.GetManifestResourceStream(Name)
            ?? throw new InvalidOperationException($"the resource {Name} is missing from {typeof(ServePage).Assembly.GetName().Name}.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
