namespace Osprey.Sources;

/// <summary>What a source path or URL names: a URL (and which scheme), a video file, the file name of a URL.</summary>
public static class SourcePaths
{
    private static readonly HashSet<string> VideoExtensions = new(StringComparer.OrdinalIgnoreCase)
        { ".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv", ".webm", ".gif", ".ts", ".asf" };

    private static readonly string[] UrlSchemes = { "http://", "https://", "rtsp://", "rtmp://", "tcp://" };

    /// <summary>True for rtsp://, rtmp://, tcp://, http(s):// sources.</summary>
    public static bool IsUrl(string source) => UrlSchemes.Any(s => source.StartsWith(s, StringComparison.OrdinalIgnoreCase));

    /// <summary>Ultralytics' <c>url2file</c>: the last segment of the URL's unescaped path, without the query.</summary>
    public static string UrlFileName(string url) => Path.GetFileName(Uri.UnescapeDataString(new Uri(url).AbsolutePath));

    /// <summary>True when the path has a video suffix Ultralytics reads (VID_FORMATS).</summary>
    public static bool IsVideo(string path) => VideoExtensions.Contains(Path.GetExtension(path));
}
