using System.Text.RegularExpressions;
using Osprey.Data;
using Osprey.Sources;
using static Osprey.Sources.SourcePaths;

namespace Osprey.Inference;

/// <summary>How a source item is read.</summary>
public enum SourceKind
{
    /// <summary>One image file.</summary>
    Image,

    /// <summary>One video file, frame by frame (Ultralytics' LoadImagesAndVideos).</summary>
    Video,

    /// <summary>One or more streams, each read by its own thread, one frame of each per batch (Ultralytics' LoadStreams).</summary>
    Streams,
}

/// <summary>A source item: an image, a video, or a set of streams (a URL, or the lines of a <c>.streams</c> file).</summary>
public sealed record PredictSource(SourceKind Kind, IReadOnlyList<string> Paths)
{
    /// <summary>The one path of an image or video item.</summary>
    public string Path => Paths[0];

    /// <summary>True for an http(s) URL of an image or video file: downloaded first, then predicted as that file.</summary>
    public bool IsRemoteFile => Kind != SourceKind.Streams && IsUrl(Path);

    /// <summary>
    /// Ultralytics' <c>clean_str</c>: the characters <c>|@#!¡·$€%&amp;()=?¿^*;:,¨´&gt;&lt;+</c> become '_' (so
    /// <c>http://host:8080/cam</c> → <c>http_//host_8080/cam</c>, whose file name <c>cam</c> names the stream's outputs).
    /// </summary>
    public static string CleanName(string source) => Regex.Replace(source, "[|@#!¡·$€%&()=?¿^*;:,¨´><+]", "_");

    /// <summary>
    /// Expands a source: an http(s) URL whose path ends in an image or video suffix (downloaded, then predicted as that
    /// file, as Ultralytics' <c>check_file</c> does), any other URL (one stream), a <c>.streams</c> file (its lines, one stream each, batched together), a
    /// folder (its images and videos, sorted), a glob (<c>dir/*.jpg</c>) or one image or video file.
    /// </summary>
    public static IReadOnlyList<PredictSource> Resolve(string source)
    {
        if (IsUrl(source))
        {
            string name = HttpSource.IsHttp(source) ? UrlFileName(source) : "";
            var kind = ImageFiles.IsImage(name) ? SourceKind.Image : IsVideo(name) ? SourceKind.Video : SourceKind.Streams;
            return new[] { new PredictSource(kind, new[] { source }) };
        }
        if (source.EndsWith(".streams", StringComparison.OrdinalIgnoreCase))
        {
            if (!File.Exists(source)) throw new FileNotFoundException($"source={source}: no such .streams file.", source);
            var streams = File.ReadAllLines(source).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')).ToArray();
            if (streams.Length == 0) throw new InvalidDataException($"{source}: lists no streams (one URL or video path a line).");
            return new[] { new PredictSource(SourceKind.Streams, streams) };
        }
        IEnumerable<string> files;
        if (Directory.Exists(source))
            files = Directory.EnumerateFiles(source).Order(StringComparer.Ordinal);
        else if (source.IndexOfAny(new[] { '*', '?' }) >= 0)
        {
            string directory = System.IO.Path.GetDirectoryName(source) is { Length: > 0 } d ? d : ".";
            string pattern = System.IO.Path.GetFileName(source);
            if (!Directory.Exists(directory)) throw new FileNotFoundException($"source={source}: folder '{directory}' not found.");
            files = Directory.EnumerateFiles(directory, pattern).Order(StringComparer.Ordinal);
        }
        else if (File.Exists(source)) files = new[] { source };
        else throw new FileNotFoundException($"source={source}: no such file, folder, glob, URL or .streams file.", source);
        var items = files.Where(f => ImageFiles.IsImage(f) || IsVideo(f))
            .Select(f => new PredictSource(IsVideo(f) ? SourceKind.Video : SourceKind.Image, new[] { f })).ToArray();
        if (items.Length == 0) throw new FileNotFoundException($"source={source}: no images or videos found.");
        return items;
    }
}
