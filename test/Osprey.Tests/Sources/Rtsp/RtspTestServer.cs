using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace Osprey.Tests.Sources.Rtsp;

/// <summary>
/// An RTSP/1.0 server on 127.0.0.1 (a free port) for one client at a time: answers OPTIONS, DESCRIBE (the SDP given),
/// SETUP (interleaved TCP only), PLAY, then sends each frame's RTP payloads as RTP packets (the frame's last with the
/// marker bit, timestamps 3000 apart) on channel 0 with an RTCP-like frame on channel 1 between frames, and closes the
/// connection. With a user, requests need Basic or Digest authorisation. The methods it received are kept.
/// </summary>
internal sealed class RtspTestServer : IDisposable
{
    private readonly TcpListener listener = new(IPAddress.Loopback, 0);
    private readonly Task loop;
    private readonly string sdp;
    private readonly IReadOnlyList<IReadOnlyList<byte[]>> frames;

    public RtspTestServer(string sdp, IReadOnlyList<IReadOnlyList<byte[]>> frames, int payloadType, string? user = null, string? password = null,
        bool digest = false, TimeSpan interval = default)
    {
        this.sdp = sdp;
        this.frames = frames;
        listener.Start();
        Port = ((IPEndPoint)listener.LocalEndpoint).Port;
        loop = Task.Run(async () =>
        {
            while (true)
            {
                TcpClient client;
                try { client = await listener.AcceptTcpClientAsync(); }
                catch (Exception) { return; }
                using (client)
                {
                    try { await Serve(client.GetStream(), payloadType, user, password, digest, interval); }
                    catch (Exception) { } // the client went away
                }
            }
        });
    }

    public int Port { get; }

    public string Url(string path = "live") => $"rtsp://127.0.0.1:{Port}/{path}";

    /// <summary>The RTSP methods received, in order (over all connections).</summary>
    public List<string> Methods { get; } = new();

    public void Dispose()
    {
        listener.Stop();
        try { loop.Wait(TimeSpan.FromSeconds(5)); } catch (AggregateException) { }
    }

    private async Task Serve(NetworkStream stream, int payloadType, string? user, string? password, bool digest, TimeSpan interval)
    {
        var reader = new StreamReader(stream, Encoding.ASCII);
        const string nonce = "0a4f113b";
        while (true)
        {
            string? start = await reader.ReadLineAsync();
            if (start is null) return;
            var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            for (string? line = await reader.ReadLineAsync(); !string.IsNullOrEmpty(line); line = await reader.ReadLineAsync())
                headers[line[..line.IndexOf(':')]] = line[(line.IndexOf(':') + 1)..].Trim();
            string[] parts = start.Split(' ');
            string method = parts[0], url = parts[1];
            lock (Methods) Methods.Add(method);
            string cseq = headers.GetValueOrDefault("CSeq", "0");
            if (user is not null && !Authorised(headers.GetValueOrDefault("Authorization"), method, url, user, password!, digest, nonce))
            {
                string challenge = digest ? $"Digest realm=\"osprey-test\", nonce=\"{nonce}\"" : "Basic realm=\"osprey-test\"";
                await Send(stream, $"RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\nWWW-Authenticate: {challenge}\r\n\r\n");
                continue;
            }
            switch (method)
            {
                case "OPTIONS":
                    await Send(stream, $"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nPublic: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n\r\n");
                    break;
                case "DESCRIBE":
                    byte[] body = Encoding.ASCII.GetBytes(sdp);
                    await Send(stream, $"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Base: {url}/\r\nContent-Type: application/sdp\r\nContent-Length: {body.Length}\r\n\r\n");
                    await stream.WriteAsync(body);
                    break;
                case "SETUP":
                    Assert.EndsWith("/trackID=0", url);
                    Assert.Contains("RTP/AVP/TCP", headers["Transport"]);
                    await Send(stream, $"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nSession: 12345678;timeout=60\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n");
                    break;
                case "PLAY":
                    Assert.Equal("12345678", headers["Session"]);
                    await Send(stream, $"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nSession: 12345678\r\nRange: npt=0.000-\r\n\r\n");
                    await Play(stream, payloadType, interval);
                    return;
                default:
                    await Send(stream, $"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n\r\n");
                    break;
            }
        }
    }

    private async Task Play(NetworkStream stream, int payloadType, TimeSpan interval)
    {
        ushort sequence = 1000;
        for (int k = 0; k < frames.Count; k++)
        {
            if (k > 0 && interval > TimeSpan.Zero) await Task.Delay(interval);
            for (int i = 0; i < frames[k].Count; i++)
            {
                var payload = frames[k][i];
                var packet = new byte[12 + payload.Length];
                packet[0] = 0x80;
                packet[1] = (byte)((i == frames[k].Count - 1 ? 0x80 : 0) | payloadType);
                packet[2] = (byte)(sequence >> 8);
                packet[3] = (byte)sequence++;
                uint timestamp = (uint)(3000 * k);
                packet[4] = (byte)(timestamp >> 24);
                packet[5] = (byte)(timestamp >> 16);
                packet[6] = (byte)(timestamp >> 8);
                packet[7] = (byte)timestamp;
                packet[8] = 0x12; // SSRC
                payload.CopyTo(packet, 12);
                await stream.WriteAsync(new byte[] { (byte)'$', 0, (byte)(packet.Length >> 8), (byte)packet.Length });
                await stream.WriteAsync(packet);
            }
            await stream.WriteAsync(new byte[] { (byte)'$', 1, 0, 8, 0x80, 200, 0, 1, 0, 0, 0, 0x12 }); // a sender report's head on the RTCP channel
            await stream.FlushAsync();
        }
    }

    private static bool Authorised(string? header, string method, string url, string user, string password, bool digest, string nonce)
    {
        if (header is null) return false;
        if (!digest) return header == "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}"));
        static string Md5(string text) => Convert.ToHexStringLower(MD5.HashData(Encoding.UTF8.GetBytes(text)));
        string expected = Md5($"{Md5($"{user}:osprey-test:{password}")}:{nonce}:{Md5($"{method}:{url}")}");
        return header.StartsWith("Digest ", StringComparison.Ordinal) && header.Contains($"response=\"{expected}\"", StringComparison.Ordinal)
            && header.Contains($"uri=\"{url}\"", StringComparison.Ordinal);
    }

    private static Task Send(NetworkStream stream, string text) => stream.WriteAsync(Encoding.ASCII.GetBytes(text)).AsTask();
}
