using System.Globalization;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace Osprey.Sources.Rtsp;

/// <summary>An RTSP response: status code and reason, headers (names compared case-insensitively) and body.</summary>
internal sealed record RtspResponse(int Status, string Reason, IReadOnlyDictionary<string, string> Headers, byte[] Body)
{
    public string? Header(string name) => Headers.TryGetValue(name, out var value) ? value : null;
}

/// <summary>
/// RTSP/1.0 (RFC 2326) over one TCP connection, with RTP interleaved on it: requests with CSeq, Session and
/// Basic or Digest (RFC 2617, no qop) authorisation from the URL's user:password, responses, and the
/// <c>$ channel length</c> frames that carry RTP/RTCP after PLAY. A read waits at most <see cref="Silence"/>.
/// </summary>
internal sealed class RtspConnection : IDisposable
{
    /// <summary>How long the server may stay silent.</summary>
    public static readonly TimeSpan Silence = TimeSpan.FromSeconds(30);

    private readonly TcpClient client;
    private readonly NetworkStream network; // written to directly, so that a keep-alive or TEARDOWN never races the reader's buffer
    private readonly BufferedStream stream;
    private readonly string? user, password;
    private readonly object writeGate = new();
    private int sequence;
    private string? authorization; // the scheme and challenge that the server asked for, once it has
    private string realm = "", nonce = "";

    public RtspConnection(Uri url)
    {
        Url = url;
        if (url.UserInfo.Length > 0)
        {
            string[] parts = url.UserInfo.Split(':', 2);
            user = Uri.UnescapeDataString(parts[0]);
            password = parts.Length > 1 ? Uri.UnescapeDataString(parts[1]) : "";
        }
        client = new TcpClient { NoDelay = true, ReceiveTimeout = (int)Silence.TotalMilliseconds };
        int port = url.IsDefaultPort || url.Port < 0 ? 554 : url.Port;
        try
        {
            if (!client.ConnectAsync(url.Host, port).Wait(TimeSpan.FromSeconds(10)))
                throw new InvalidDataException($"{Shown}: no server answers at {url.Host}:{port}.");
        }
        catch (Exception e)
        {
            client.Dispose(); // every failure, the timeout included: a connect still pending must not keep a socket
            if (e is InvalidDataException) throw;
            throw new InvalidDataException($"{Shown}: no server answers at {url.Host}:{port}.",
                e is AggregateException { InnerException: { } inner } ? inner : e);
        }
        network = client.GetStream();
        stream = new BufferedStream(network, 1 << 16);
    }

    /// <summary>The URL as given.</summary>
    public Uri Url { get; }

    /// <summary>The URL without user:password, for messages.</summary>
    public string Shown => WithoutUser.ToString();

    /// <summary>The URL without user:password, escaped, as requests name it.</summary>
    public string RequestUrl => WithoutUser.AbsoluteUri;

    private Uri WithoutUser => new UriBuilder(Url) { UserName = "", Password = "" }.Uri;

    /// <summary>The session id from SETUP's answer, sent with every later request.</summary>
    public string? Session { get; set; }

    /// <summary>Sends a request and reads its response (skipping interleaved frames before it); answers 401 once with credentials.</summary>
    public RtspResponse Request(string method, string url, params (string Name, string Value)[] headers)
    {
        Send(method, url, headers);
        var response = ReadResponse(method);
        if (response.Status == 401 && user is not null && authorization is null && Challenge(response))
        {
            Send(method, url, headers);
            response = ReadResponse(method);
        }
        if (response.Status == 401)
            throw new InvalidDataException($"{Shown}: the server refuses {method} (401 {response.Reason})" +
                (user is null ? ": give user:password in the URL (rtsp://user:password@host/…)." : ": wrong user or password."));
        if (response.Status != 200) throw new InvalidDataException($"{Shown}: {method} answered RTSP {response.Status} {response.Reason}.");
        return response;
    }

    /// <summary>Sends a request without waiting for its response (the read loop skips responses).</summary>
    public void Send(string method, string url, params (string Name, string Value)[] headers)
    {
        var text = new StringBuilder();
        int cseq = Interlocked.Increment(ref sequence); // the keep-alive and TEARDOWN may be sent from two threads
        text.Append(CultureInfo.InvariantCulture, $"{method} {url} RTSP/1.0\r\nCSeq: {cseq}\r\nUser-Agent: Osprey\r\n");
        if (Session is not null) text.Append(CultureInfo.InvariantCulture, $"Session: {Session}\r\n");
        if (Authorization(method, url) is { } auth) text.Append(CultureInfo.InvariantCulture, $"Authorization: {auth}\r\n");
        foreach (var (name, value) in headers) text.Append(CultureInfo.InvariantCulture, $"{name}: {value}\r\n");
        text.Append("\r\n");
        var bytes = Encoding.ASCII.GetBytes(text.ToString());
        lock (writeGate) network.Write(bytes);
    }

    /// <summary>
    /// The next interleaved frame (channel, payload), skipping RTSP messages the server sends between them; null when
    /// the connection ends or stays silent (<paramref name="ending"/> says which).
    /// </summary>
    public (int Channel, byte[] Payload)? NextFrame(out string ending)
    {
        ending = "";
        try
        {
            while (true)
            {
                int first = stream.ReadByte();
                if (first < 0)
                {
                    ending = "the server closed the stream";
                    return null;
                }
                if (first == '$')
                {
                    var head = ReadExactly(3);
                    int length = (head[1] << 8) | head[2];
                    return (head[0], ReadExactly(length));
                }
                ReadMessage((byte)first); // a response (to a keep-alive) or a request of the server's: not for us
            }
        }
        catch (IOException e) when (e.InnerException is SocketException { SocketErrorCode: SocketError.TimedOut })
        {
            ending = $"no data for {Silence.TotalSeconds:0} s";
        }
        catch (EndOfStreamException)
        {
            ending = "the server closed the stream";
        }
        catch (IOException e)
        {
            ending = $"the connection broke ({e.Message})";
        }
        catch (ObjectDisposedException)
        {
            ending = "stopped";
        }
        return null;
    }

    /// <summary>Closes the socket, so that a read blocked in another thread returns.</summary>
    public void Close() => client.Client.Close();

    public void Dispose()
    {
        client.Dispose();
    }

    private RtspResponse ReadResponse(string method)
    {
        try
        {
            while (true)
            {
                int first = stream.ReadByte();
                if (first < 0) throw new InvalidDataException($"{Shown}: the server closed the connection instead of answering {method}.");
                if (first == '$')
                {
                    var head = ReadExactly(3);
                    ReadExactly((head[1] << 8) | head[2]);
                    continue;
                }
                if (ReadMessage((byte)first) is { } response) return response;
            }
        }
        catch (IOException e) when (e.InnerException is SocketException { SocketErrorCode: SocketError.TimedOut })
        {
            throw new InvalidDataException($"{Shown}: no answer to {method} in {Silence.TotalSeconds:0} s.", e);
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException($"{Shown}: the server closed the connection while answering {method}.", e);
        }
        catch (IOException e)
        {
            throw new InvalidDataException($"{Shown}: the connection broke while waiting for the answer to {method} ({e.Message}).", e);
        }
    }

    // One RTSP message whose first byte is read already; a response is returned, a request of the server's is skipped.
    private RtspResponse? ReadMessage(byte first)
    {
        string start = (char)first + ReadLine();
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        for (string line = ReadLine(); line.Length > 0; line = ReadLine())
        {
            int colon = line.IndexOf(':');
            if (colon > 0) headers[line[..colon].Trim()] = line[(colon + 1)..].Trim();
        }
        int length = headers.TryGetValue("Content-Length", out var text) && int.TryParse(text, out int n) && n >= 0 ? n : 0;
        var body = ReadExactly(length);
        if (!start.StartsWith("RTSP/", StringComparison.Ordinal)) return null;
        string[] parts = start.Split(' ', 3);
        if (parts.Length < 2 || !int.TryParse(parts[1], out int status))
            throw new InvalidDataException($"{Shown}: not an RTSP answer: '{start}'.");
        return new RtspResponse(status, parts.Length > 2 ? parts[2] : "", headers, body);
    }

    private string ReadLine()
    {
        var bytes = new List<byte>();
        while (true)
        {
            int b = stream.ReadByte();
            if (b < 0) throw new EndOfStreamException();
            if (b == '\n') break;
            if (bytes.Count > 8192) throw new InvalidDataException($"{Shown}: an RTSP line longer than 8 KiB: not an RTSP server.");
            bytes.Add((byte)b);
        }
        return Encoding.ASCII.GetString(bytes.ToArray()).TrimEnd('\r');
    }

    private byte[] ReadExactly(int count)
    {
        var bytes = new byte[count];
        stream.ReadExactly(bytes);
        return bytes;
    }

    // Takes the server's Basic or Digest challenge; false when it offers neither.
    private bool Challenge(RtspResponse response)
    {
        string? challenge = response.Header("WWW-Authenticate");
        if (challenge is null) return false;
        if (challenge.StartsWith("Digest", StringComparison.OrdinalIgnoreCase))
        {
            realm = Parameter(challenge, "realm");
            nonce = Parameter(challenge, "nonce");
            authorization = "Digest";
            return true;
        }
        if (challenge.StartsWith("Basic", StringComparison.OrdinalIgnoreCase))
        {
            authorization = "Basic";
            return true;
        }
        return false;
    }

    private string? Authorization(string method, string url)
    {
        if (authorization == "Basic") return "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}"));
        if (authorization != "Digest") return null;
        // RFC 2617 without qop: response = MD5(MD5(user:realm:password):nonce:MD5(method:uri)); MD5 is what the RFC names
#pragma warning disable CA5351
        static string Md5(string text) => Convert.ToHexStringLower(MD5.HashData(Encoding.UTF8.GetBytes(text)));
#pragma warning restore CA5351
        string answer = Md5($"{Md5($"{user}:{realm}:{password}")}:{nonce}:{Md5($"{method}:{url}")}");
        return $"Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{url}\", response=\"{answer}\"";
    }

    private static string Parameter(string challenge, string name)
    {
        var match = System.Text.RegularExpressions.Regex.Match(challenge, name + "=\"([^\"]*)\"", System.Text.RegularExpressions.RegexOptions.IgnoreCase);
        return match.Success ? match.Groups[1].Value : "";
    }
}
