using System.Globalization;
using OpenCvSharp;
using Osprey.Config;
using Osprey.Runtime;
using Osprey.Sources;

namespace Osprey.Inference;

/// <summary>What <c>osprey predict</c> produced.</summary>
/// <param name="RunDirectory">runs/detect/predictN.</param>
/// <param name="Images">Images and video frames processed.</param>
/// <param name="Detections">Detections in all of them.</param>
/// <param name="MillisecondsPerImage">Mean letterbox + model + NMS time.</param>
/// <param name="Lines">One summary line per image or video (path: counts per class).</param>
/// <param name="InputShapes">The shape of the model input of every forward, in order ((b, 3, S, S); b = streams batched), as given to the backend.</param>
/// <param name="Skipped">Images that could not be read, with why (skipped with a warning, as Ultralytics does).</param>
/// <param name="Backend">The backend that ran the model (torch or onnxruntime).</param>
public sealed record PredictReport(string RunDirectory, int Images, int Detections, double MillisecondsPerImage, IReadOnlyList<string> Lines,
    IReadOnlyList<long[]> InputShapes, IReadOnlyList<string> Skipped, string Backend);

/// <summary>One entry of predictions.json.</summary>
public sealed record PredictionRecord(string image, int class_id, string name, float conf, float[] xyxy);

/// <summary>
/// <c>osprey predict model=… source=…</c> with Ultralytics' sources and outputs (see <see cref="PredictSource"/>):
/// annotated images as runs/detect/predictN/&lt;stem&gt;.jpg; each video or stream as &lt;name&gt;.avi (MJPG, Ultralytics'
/// writer on Linux) at the video's integer fps, or 30 for streams; <c>save_txt</c> labels/&lt;stem&gt;.txt
/// (<c>cls cx cy w h [conf]</c>, normalised; only for images with detections; video frames &lt;stem&gt;_&lt;frame&gt;.txt with
/// the 1-based number of the frame processed, streams &lt;stem&gt;_&lt;batch&gt;.txt); <c>save_json</c> predictions.json
/// ([{image, class_id, name, conf, xyxy}], original pixels). A <c>.streams</c> file's streams are read by a thread each
/// (<see cref="LiveFrames"/>: the newest frame, or every frame with <c>stream_buffer</c>) and predicted as one batch
/// until a stream has ended and has no frame left. A stream URL is read by <see cref="FrameSources"/>
/// (MJPEG over HTTP by Osprey itself); an http(s) URL of an image or video file is downloaded first and named by its URL.
/// </summary>
public static class PredictRun
{
    /// <summary>Frame rate of the videos written for streams (Ultralytics: 30).</summary>
    public const int StreamFps = 30;

    /// <summary>Runs prediction as the arguments say; <paramref name="progress"/> gets one line per image or frame.</summary>
    public static PredictReport Run(OspreyArgs args, Action<string>? progress = null)
    {
        string model = args.Model ?? throw new ArgumentsException("predict needs model=… (weights, YAML or .onnx)");
        string source = args.Source ?? throw new ArgumentsException("predict needs source=… (image, folder, glob, video, URL or .streams)");
        if (args.VidStride < 1) throw new ArgumentsException($"vid_stride={args.VidStride}: must be ≥ 1");
        var options = Options(args);
        var device = args.DeviceOrDefault().Resolve();
        var sources = PredictSource.Resolve(source);
        using var detector = Detectors.Open(model, args.Backend, options, device);
        var outputs = new Outputs(args, detector, Training.RunDirectory.Create(args.Project, args.Name, "predict", args.ExistOk), progress);
        foreach (var item in sources)
        {
            // an image or video URL is downloaded first and named by its URL (Ultralytics' check_file); one that turns out
            // to be an MJPEG stream is read as a stream from that same response
            var (download, opened) = item.IsRemoteFile ? HttpSource.DownloadOrStream(item.Path) : (null, null);
            using var downloaded = download;
            string file = download?.Path ?? item.Path;
            var kind = opened is not null ? SourceKind.Streams : item.Kind;
            switch (kind)
            {
                case SourceKind.Image:
                    using (var image = Cv2.ImRead(file, ImreadModes.Color))
                    {
                        if (image.Empty())
                        {
                            outputs.Skip(item.Path, "not an image OpenCV can read");   // Ultralytics: warn and go on
                            break;
                        }
                        string stem = Path.GetFileNameWithoutExtension(file);
                        outputs.Handle(new[] { image }, new[] { new Target(item.Path, stem, null, Path.Combine(outputs.RunDirectory, stem + ".jpg")) });
                    }
                    break;
                case SourceKind.Video:
                    RunVideo(file, item.Path, outputs);
                    break;
                default:
                    RunStreams(item.Paths, outputs, opened);
                    break;
            }
        }
        return outputs.Finish();
    }

    /// <summary>Predict options from the arguments (conf 0.25 unless given).</summary>
    public static PredictOptions Options(OspreyArgs args)
    {
        if (args.Imgsz < 32 || args.Imgsz % 32 != 0)
            throw new ArgumentsException($"imgsz={args.Imgsz}: must be a positive multiple of 32 (the largest stride)");
        return new PredictOptions
        {
            ImageSize = args.Imgsz, Confidence = (float)(args.Conf ?? 0.25), Iou = (float)args.Iou, MaxDetections = args.MaxDet,
            Classes = args.Classes?.Indices.ToArray(), Agnostic = args.AgnosticNms, Half = args.Half,
        };
    }

    // Ultralytics' LoadImagesAndVideos: grab vid_stride frames, decode the last; frames = int(frame count / vid_stride).
    private static void RunVideo(string path, string name, Outputs outputs)
    {
        using var frameSource = new CaptureFrames(FrameSources.OpenFile(path, name));
        var capture = frameSource.Capture;
        int stride = outputs.Args.VidStride;
        int fps = (int)capture.Fps;                           // Ultralytics: int(cap.get(CAP_PROP_FPS))
        int frames = (int)(capture.FrameCount / (double)stride);
        string stem = Path.GetFileNameWithoutExtension(path);
        string videoPath = Path.Combine(outputs.RunDirectory, stem + ".avi");
        using var writer = new LazyWriter(videoPath, fps > 0 ? fps : StreamFps, outputs.Args.Save);
        using var frame = new Mat();
        int index = 0;
        while ((frames <= 0 || index < frames) && frameSource.Next(stride, frame))
        {
            index++;
            outputs.Handle(new[] { frame }, new[] { new Target($"{name} frame {index}", $"{stem}_{index}", writer, null) });
        }
        outputs.Lines.Add($"{name}: {index} frames" + (outputs.Args.Save ? $" → {videoPath}" : ""));
    }

    // Ultralytics' LoadStreams: a reader thread per stream (LiveFrames), one frame of every stream per batch, until a
    // stream has ended and has no frame left; named by clean_str(source)'s file name.
    // first: the first path's stream, already open (owned from here on), or null to open every path here.
    private static void RunStreams(IReadOnlyList<string> paths, Outputs outputs, IFrameSource? first = null)
    {
        var streams = new List<LiveFrames>();
        var writers = new List<LazyWriter>();
        try
        {
            var names = new List<string>();
            foreach (string path in paths)
            {
                var source = streams.Count == 0 && first is not null ? first : FrameSources.Open(path);
                first = null;
                try
                {
                    streams.Add(new LiveFrames(source, path, outputs.Args.VidStride, outputs.Args.StreamBuffer,
                        source.IsLive ? Reconnection.For(path) : null)); // Ultralytics reopens a stream after a failed read
                }
                catch
                {
                    source.Dispose();
                    throw;
                }
                string name = Path.GetFileName(PredictSource.CleanName(path));
                if (name.Length == 0) name = "stream" + streams.Count;
                names.Add(name);
                writers.Add(new LazyWriter(Path.Combine(outputs.RunDirectory, Path.ChangeExtension(name, ".avi")), StreamFps, outputs.Args.Save));
            }
            int count = 0;
            while (true)
            {
                var frames = new List<Mat>();
                try
                {
                    foreach (var stream in streams)
                    {
                        if (stream.Take() is not { } frame) break;
                        frames.Add(frame);
                    }
                    if (frames.Count < streams.Count) break;
                    count++;
                    var targets = paths.Select((p, i) => new Target($"{p} frame {count}", $"{Path.GetFileNameWithoutExtension(names[i])}_{count}", writers[i], null)).ToArray();
                    outputs.Handle(frames, targets);
                }
                finally
                {
                    foreach (var frame in frames) frame.Dispose();
                }
            }
            for (int i = 0; i < paths.Count; i++)
            {
                var stream = streams[i];
                var notes = new[] { stream.Description, stream.Dropped > 0 ? $"{stream.Dropped} of {stream.Read} frames dropped: stream_buffer=False predicts the newest" : "" }
                    .Where(n => n.Length > 0).ToArray();
                outputs.Lines.Add($"{paths[i]}: {count} frames" + (notes.Length > 0 ? $" ({string.Join("; ", notes)})" : "") +
                    (outputs.Args.Save ? $" → {writers[i].Path}" : ""));
            }
        }
        finally
        {
            foreach (var writer in writers) writer.Dispose();
            foreach (var stream in streams) stream.Dispose();
        }
    }
}
