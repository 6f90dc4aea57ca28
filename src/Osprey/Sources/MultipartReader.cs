using System.Text;

namespace Osprey.Sources;

/// <summary>One part of a multipart body.</summary>
/// <param name="Headers">The part's headers (names compared case-insensitively).</param>
/// <param name="Body">The part's bytes.</param>
/// <param name="Complete">False when the body ran to the end of the stream without a Content-Length or a next boundary
/// to show that it is whole (the server may have closed mid-part).</param>
internal sealed record MultipartPart(IReadOnlyDictionary<string, string> Headers, byte[] Body, bool Complete);

/// <summary>
/// Reads the parts of a <c>multipart/x-mixed-replace</c> body (an MJPEG stream) one at a time: skips to the next
/// boundary line (so a preamble or bytes after a Content-Length are ignored), reads the part's header lines, then takes
/// Content-Length bytes when the part gives it, else everything up to the next boundary (less the CRLF before it).
/// </summary>
internal sealed class MultipartReader
{
    /// <summary>A part (or a run of bytes without a boundary) larger than this is an error, not a frame.</summary>
    public const int MaxPartBytes = 64 << 20;

    private readonly Func<byte[], int, int, int> read;
    private readonly byte[] delimiter;
    private static readonly byte[] NewLine = { (byte)'\n' };
    private byte[] buffer = new byte[1 << 16];
    private int start, end; // the unread bytes are buffer[start..end)
    private bool atEnd;

    /// <param name="read">Reads into (buffer, offset, count); returns the bytes read, 0 at the end of the stream.</param>
    /// <param name="boundary">The Content-Type's boundary parameter (a leading "--" in it is tolerated, as cameras send both).</param>
    public MultipartReader(Func<byte[], int, int, int> read, string boundary)
    {
        this.read = read;
        delimiter = Encoding.ASCII.GetBytes("--" + boundary.TrimStart('-'));
    }

    /// <summary>The next part, or null at the closing boundary or the end of the stream (a part cut short by it is dropped).</summary>
    public MultipartPart? Next()
    {
        int at = Find(delimiter);
        if (at < 0) return null;
        start = at + delimiter.Length;
        if (!Ensure(2) || (buffer[start] == '-' && buffer[start + 1] == '-')) return null; // "--boundary--" closes the body
        if (ReadLine() is null) return null; // the rest of the boundary line
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        while (true)
        {
            string? line = ReadLine();
            if (line is null) return null;
            if (line.Length == 0) break;
            int colon = line.IndexOf(':');
            if (colon > 0) headers[line[..colon].Trim()] = line[(colon + 1)..].Trim();
        }
        if (headers.TryGetValue("Content-Length", out string? length) && int.TryParse(length, out int count) && count >= 0)
        {
            if (count > MaxPartBytes) throw new InvalidDataException($"a part of {count} bytes (more than {MaxPartBytes})");
            if (!Ensure(count)) return null;
            var body = buffer.AsSpan(start, count).ToArray();
            start += count;
            return new MultipartPart(headers, body, true);
        }
        int next = Find(delimiter);
        int stop = next < 0 ? end : next;
        int bodyEnd = stop;
        if (next >= 0 && bodyEnd > start && buffer[bodyEnd - 1] == '\n') bodyEnd--;
        if (next >= 0 && bodyEnd > start && buffer[bodyEnd - 1] == '\r') bodyEnd--;
        var bytes = buffer.AsSpan(start, bodyEnd - start).ToArray();
        start = stop;
        return bytes.Length == 0 && next < 0 ? null : new MultipartPart(headers, bytes, next >= 0);
    }

    // The index in buffer where pattern starts, reading more as needed; -1 when the stream ends first.
    private int Find(byte[] pattern)
    {
        int searched = 0; // bytes after start that cannot begin a match
        while (true)
        {
            int i = buffer.AsSpan(start + searched, end - start - searched).IndexOf(pattern);
            if (i >= 0) return start + searched + i;
            searched = Math.Max(searched, end - start - pattern.Length + 1);
            if (!Fill()) return -1;
        }
    }

    private bool Ensure(int count)
    {
        while (end - start < count)
            if (!Fill()) return false;
        return true;
    }

    private string? ReadLine()
    {
        int newline = Find(NewLine);
        if (newline < 0) return null;
        string line = Encoding.ASCII.GetString(buffer, start, newline - start).TrimEnd('\r');
        start = newline + 1;
        return line;
    }

    // Reads more bytes after end, moving the unread bytes to the front or growing the buffer when it is full.
    private bool Fill()
    {
        if (atEnd) return false;
        if (end == buffer.Length)
        {
            if (start > 0)
            {
                Array.Copy(buffer, start, buffer, 0, end - start);
                end -= start;
                start = 0;
            }
            else
            {
                if (buffer.Length >= MaxPartBytes) throw new InvalidDataException($"no boundary in {MaxPartBytes} bytes");
                Array.Resize(ref buffer, buffer.Length * 2);
            }
        }
        int n = read(buffer, end, buffer.Length - end);
        if (n <= 0)
        {
            atEnd = true;
            return false;
        }
        end += n;
        return true;
    }
}
