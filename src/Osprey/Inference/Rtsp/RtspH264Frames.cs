using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using OpenCvSharp;

namespace Osprey.Inference.Rtsp;

/// <summary>
/// An RTSP stream of H.264 (RFC 6184), decoded by the FFmpeg inside OpenCV (which has the h264 demuxer and decoder but
/// no network protocols): a pump thread writes the depacketized Annex-B stream into a named pipe (FIFO) in a temp
/// folder, and VideoCapture reads the pipe as a raw .h264 file. Closing the pipe at the stream's end ends the video.
/// </summary>
internal sealed partial class RtspH264Frames : IFrameSource
{
    private readonly RtspSession session;
    private readonly H264Depacketizer depacketizer;
    private readonly string folder, fifo;
    private readonly Thread pump;
    private readonly VideoCapture capture;
    private volatile string pumpEnding = "";
    private volatile ExceptionDispatchInfo? pumpFailure; // a stream that broke its protocol: thrown from Next

    public RtspH264Frames(RtspSession session)
    {
        this.session = session;
        depacketizer = new H264Depacketizer(session.Media.Format.TryGetValue("sprop-parameter-sets", out var sets) ? sets : null);
        folder = Path.Combine(Path.GetTempPath(), "osprey-rtsp-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        fifo = Path.Combine(folder, "stream.h264");
        if (MakeFifo(fifo, Convert.ToUInt32("600", 8)) != 0)
        {
            Directory.Delete(folder, recursive: true);
            throw new InvalidDataException($"{session.Shown}: cannot make a named pipe in {folder} for the H.264 decoder (errno {Marshal.GetLastPInvokeError()}).");
        }
        pump = new Thread(Pump) { IsBackground = true, Name = "osprey rtsp h264 pump" };
        pump.Start();
        capture = new VideoCapture(fifo, VideoCaptureAPIs.FFMPEG); // blocks until the pump opens the pipe, then probes the stream
        if (!capture.IsOpened())
        {
            Dispose();
            throw new InvalidDataException($"{session.Shown}: OpenCV's FFmpeg cannot decode this H.264 stream ({Ending}).");
        }
    }

    public string Description
    {
        get
        {
            int dropped = depacketizer.Dropped;
            return $"RTSP H.264, {Ending}" + (dropped > 0 ? $", {dropped} incomplete NAL unit{(dropped > 1 ? "s" : "")} skipped" : "");
        }
    }

    private string Ending => pumpEnding.Length > 0 ? pumpEnding : session.Ending.Length > 0 ? session.Ending : "playing";

    /// <summary>grab() <paramref name="stride"/> frames, retrieve() the last (vid_stride).</summary>
    public bool Next(int stride, Mat frame)
    {
        for (int i = 0; i < stride; i++)
            if (!capture.Grab())
            {
                pumpFailure?.Throw(); // the pipe closed because the RTSP stream failed: say so instead of ending quietly
                return false;
            }
        return capture.Retrieve(frame) && !frame.Empty();
    }

    public void Stop() => session.Stop();

    public void Dispose()
    {
        session.Stop();        // the pump's read ends …
        capture?.Dispose();    // … and so does a write blocked on a full pipe
        if (!pump.Join(TimeSpan.FromSeconds(2)))
        {
            // the pump still waits to open the pipe (the decoder never opened it): open the other end (read-write, which
            // never blocks on a FIFO) to release it; its writes then fail and it ends
            using (new FileStream(fifo, FileMode.Open, FileAccess.ReadWrite)) { }
            pump.Join();
        }
        session.Dispose();
        try
        {
            Directory.Delete(folder, recursive: true);
        }
        catch (IOException)
        {
            // the temp folder is the system's to clean
        }
    }

    // RTP → Annex-B → the pipe, until the stream ends; closing the pipe is the decoder's end of file.
    private void Pump()
    {
        try
        {
            using var pipe = new FileStream(fifo, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, 1, FileOptions.None);
            while (session.Next(out bool gap) is { } packet)
            {
                if (gap) depacketizer.Lost();
                if (depacketizer.Push(packet) is { } unit) pipe.Write(unit);
            }
        }
        catch (IOException e)
        {
            pumpEnding = $"the decoder stopped reading ({e.Message})";
        }
        catch (Exception e) // e.g. a malformed RTSP message between the RTP packets: a background thread must not end the process
        {
            pumpEnding = $"the stream failed ({e.Message})";
            pumpFailure = ExceptionDispatchInfo.Capture(e);
        }
    }

    [LibraryImport("libc", EntryPoint = "mkfifo", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int MakeFifo(string path, uint mode);
}
