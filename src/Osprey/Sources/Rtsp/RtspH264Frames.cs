using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using OpenCvSharp;

namespace Osprey.Sources.Rtsp;

/// <summary>
/// An RTSP stream of H.264 (RFC 6184), decoded by the FFmpeg inside OpenCV (which has the h264 demuxer and decoder but
/// no network protocols): a pump thread writes the depacketized Annex-B stream into a named pipe (FIFO) in a temp
/// folder, and VideoCapture reads the pipe as a raw .h264 file. Closing the pipe at the stream's end ends the video.
/// </summary>
internal sealed partial class RtspH264Frames : IFrameSource
{
    private readonly RtspSession session;
    private readonly H264Depacketizer depacketizer;
    private readonly TempDownload pipe; // the FIFO, in a temp folder of its own
    private readonly Thread pump;
    private readonly CaptureFrames frames;
    private volatile string pumpEnding = "";
    private volatile ExceptionDispatchInfo? pumpFailure; // a stream that broke its protocol: thrown from Next

    public RtspH264Frames(RtspSession session)
    {
        this.session = session;
        depacketizer = new H264Depacketizer(session.Media.Format.TryGetValue("sprop-parameter-sets", out var sets) ? sets : null);
        pipe = TempDownload.In("osprey-rtsp-", "stream.h264");
        if (MakeFifo(pipe.Path, Convert.ToUInt32("600", 8)) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            pipe.Dispose();
            throw new InvalidDataException($"{session.Shown}: cannot make a named pipe {pipe.Path} for the H.264 decoder (errno {errno}).");
        }
        pump = new Thread(Pump) { IsBackground = true, Name = "osprey rtsp h264 pump" };
        pump.Start();
        // blocks until the pump opens the pipe, then probes the stream
        frames = new CaptureFrames(new VideoCapture(pipe.Path, VideoCaptureAPIs.FFMPEG));
        if (!frames.Capture.IsOpened())
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

    public bool IsLive => true;

    /// <summary>grab() <paramref name="stride"/> frames, retrieve() the last (vid_stride).</summary>
    public bool Next(int stride, Mat frame)
    {
        if (frames.Next(stride, frame)) return true;
        pumpFailure?.Throw(); // the pipe closed because the RTSP stream failed: say so instead of ending quietly
        return false;
    }

    public void Stop() => session.Stop();

    public void Dispose()
    {
        session.Stop();        // the pump's read ends …
        frames?.Dispose();     // … and so does a write blocked on a full pipe
        if (!pump.Join(TimeSpan.FromSeconds(2)))
        {
            // the pump still waits to open the pipe (the decoder never opened it): open the other end (read-write, which
            // never blocks on a FIFO) to release it; its writes then fail and it ends
            using (new FileStream(pipe.Path, FileMode.Open, FileAccess.ReadWrite)) { }
            pump.Join();
        }
        session.Dispose();
        pipe.Dispose();
    }

    // RTP → Annex-B → the pipe, until the stream ends; closing the pipe is the decoder's end of file.
    private void Pump()
    {
        try
        {
            using var writer = new FileStream(pipe.Path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, 1, FileOptions.None);
            while (session.Next(out bool gap) is { } packet)
            {
                if (gap) depacketizer.Lost();
                if (depacketizer.Push(packet) is { } unit) writer.Write(unit);
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
