namespace Osprey.Sources;

/// <summary>A file (a download, a named pipe) in a folder of its own under the temp folder; the folder is deleted on dispose.</summary>
internal sealed class TempDownload(string path) : IDisposable
{
    public string Path => path;

    /// <summary>&lt;temp&gt;/&lt;prefix&gt;&lt;guid&gt;/&lt;name&gt;, the folder made (the file not).</summary>
    public static TempDownload In(string prefix, string name)
    {
        string folder = System.IO.Path.Combine(System.IO.Path.GetTempPath(), prefix + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        return new TempDownload(System.IO.Path.Combine(folder, name));
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(System.IO.Path.GetDirectoryName(path)!, recursive: true);
        }
        catch (IOException)
        {
            // already gone, or held open elsewhere: the temp folder is the system's to clean
        }
    }
}

/// <summary>
/// HTTP for predict sources: GET with clean errors (no server, HTTP status, silence), reads with a timeout, and downloads
/// of image and video URLs (Ultralytics' <c>check_file</c> downloads them into the working folder; Osprey into a temp
/// folder it deletes after the run, so no file of the user's is written or reused).
/// </summary>
internal static class HttpSource
{
    /// <summary>How long the server may stay silent: for the response headers, and for each read of the body.</summary>
    public static readonly TimeSpan Silence = TimeSpan.FromSeconds(30);

    private static readonly HttpClient Client = new(new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(10) })
    {
        Timeout = Timeout.InfiniteTimeSpan, // streams never end; silence is timed per read instead
    };

    /// <summary>True for http:// and https:// URLs.</summary>
    public static bool IsHttp(string source) =>
        source.StartsWith("http://", StringComparison.OrdinalIgnoreCase) || source.StartsWith("https://", StringComparison.OrdinalIgnoreCase);

    /// <summary>GETs <paramref name="url"/> up to its headers; a connection failure, a silent server or a non-2xx status is an error naming the URL.</summary>
    public static HttpResponseMessage Get(string url)
    {
        var uri = new Uri(url);
        using var timeout = new CancellationTokenSource(Silence);
        HttpResponseMessage response;
        try
        {
            response = Client.GetAsync(uri, HttpCompletionOption.ResponseHeadersRead, timeout.Token).GetAwaiter().GetResult();
        }
        catch (HttpRequestException e) when (e.HttpRequestError == HttpRequestError.ConnectionError)
        {
            throw new InvalidDataException($"{url}: no server answers at {uri.Host}:{uri.Port}.", e);
        }
        catch (HttpRequestException e)
        {
            throw new InvalidDataException($"{url}: {e.Message}", e);
        }
        catch (OperationCanceledException e)
        {
            throw new InvalidDataException($"{url}: the server at {uri.Host}:{uri.Port} sent no answer in {Silence.TotalSeconds:0} s.", e);
        }
        if (response.IsSuccessStatusCode) return response;
        int code = (int)response.StatusCode;
        string reason = response.ReasonPhrase ?? "";
        response.Dispose();
        throw new InvalidDataException($"{url}: HTTP {code} {reason}".TrimEnd() + ".");
    }

    /// <summary>
    /// Reads from a response body, waiting at most <see cref="Silence"/>; 0 (the end) when it times out
    /// (<paramref name="timedOut"/>) or <paramref name="stop"/> is cancelled.
    /// </summary>
    public static int Read(Stream body, byte[] buffer, int offset, int count, out bool timedOut, CancellationToken stop = default)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stop);
        timeout.CancelAfter(Silence);
        try
        {
            timedOut = false;
            return body.ReadAsync(buffer.AsMemory(offset, count), timeout.Token).AsTask().GetAwaiter().GetResult();
        }
        catch (OperationCanceledException)
        {
            timedOut = !stop.IsCancellationRequested;
            return 0;
        }
    }

    /// <summary>
    /// GETs <paramref name="url"/>: an MJPEG stream (multipart/x-mixed-replace) comes back open as frames, read from this
    /// one response; anything else is saved to a temporary file (<see cref="Save"/>) and comes back as that.
    /// </summary>
    internal static (TempDownload? File, IFrameSource? Stream) DownloadOrStream(string url)
    {
        var response = Get(url);
        if (MjpegFrames.IsMjpeg(response))
        {
            try
            {
                return (null, new MjpegFrames(url, response));
            }
            catch
            {
                response.Dispose();
                throw;
            }
        }
        using (response) return (Save(url, response), null);
    }

    /// <summary>Writes the body of <paramref name="response"/> (a GET of <paramref name="url"/>) as <see cref="DownloadOrStream"/> does.</summary>
    public static TempDownload Save(string url, HttpResponseMessage response)
    {
        var download = TempDownload.In("osprey-", SourcePaths.UrlFileName(url));
        try
        {
            using var body = response.Content.ReadAsStream();
            using var file = File.Create(download.Path);
            var buffer = new byte[1 << 16];
            long total = 0;
            while (true)
            {
                int n;
                try
                {
                    n = Read(body, buffer, 0, buffer.Length, out bool timedOut);
                    if (timedOut) throw new InvalidDataException($"{url}: the download stalled after {total} bytes (no data in {Silence.TotalSeconds:0} s).");
                }
                catch (IOException e)
                {
                    throw new InvalidDataException($"{url}: the download broke off after {total} bytes ({e.Message}).", e);
                }
                if (n == 0) break;
                file.Write(buffer, 0, n);
                total += n;
            }
            return download;
        }
        catch
        {
            download.Dispose();
            throw;
        }
    }
}
