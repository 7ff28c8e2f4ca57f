package library

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
)

// seedTime is the update_time of every seeded book.
var seedTime = time.Date(2024, time.January, 1, 0, 0, 0, 0, time.UTC)

// seedShelf is a shelf of the initial catalogue with its books.
type seedShelf struct {
	id, theme string
	books     []seedBook
}

// seedBook is a book of the initial catalogue with its text.
type seedBook struct {
	id   string
	book *libraryv1.Book
	text string
}

// seed fills the catalogue with the seeded shelves and books.
func (s *Server) seed() {
	for _, ss := range seedCatalogue() {
		sh := &shelf{theme: ss.theme, books: make(map[string]*entry)}
		s.shelves[ss.id] = sh
		for _, sb := range ss.books {
			sb.book.Name = bookName{shelf: ss.id, book: sb.id}.String()
			sb.book.UpdateTime = timestamppb.New(seedTime)
			s.put(sh, sb.id, sb.book, []byte(sb.text))
		}
	}
}

// seedCatalogue returns the initial shelves, newly allocated on each call.
func seedCatalogue() []seedShelf {
	return []seedShelf{
		{id: "1", theme: "fiction", books: []seedBook{
			{id: "dune", text: "Dune, by Frank Herbert.\n\nA desert planet, a noble house and the spice that everyone wants.\n", book: &libraryv1.Book{
				Title:          "Dune",
				Author:         author("Frank Herbert", 1920, time.October, 8),
				Isbn:           "978-0441172719",
				Genre:          libraryv1.Genre_GENRE_FICTION,
				Tags:           []string{"classic", "sci-fi"},
				PageCount:      412,
				PriceCents:     999,
				PublishTime:    date(1965, time.August, 1),
				ReadTime:       durationpb.New(14 * time.Hour),
				Rating:         wrapperspb.Double(4.6),
				Attributes:     map[string]string{"language": "en", "format": "paperback", "publisher": "Ace"},
				CatalogueCode:  "FIC-HER-0001",
				Available:      true,
				CoverThumbnail: []byte("\x89PNG\r\n\x1a\n"),
				Reviews: []*libraryv1.Review{
					{Reader: "ada", Stars: 5, Text: "Still the best world-building I know."},
					{Reader: "brian", Stars: 4, Text: "Slow start, then impossible to put down."},
				},
			}},
			{id: "neuromancer", text: "Neuromancer, by William Gibson.\n\nA washed-up hacker gets one last job.\n", book: &libraryv1.Book{
				Title:         "Neuromancer",
				Author:        author("William Gibson", 1948, time.March, 17),
				Isbn:          "978-0441569595",
				Genre:         libraryv1.Genre_GENRE_FICTION,
				Tags:          []string{"cyberpunk", "sci-fi"},
				PageCount:     271,
				PriceCents:    1499,
				PublishTime:   date(1984, time.July, 1),
				ReadTime:      durationpb.New(8 * time.Hour),
				Rating:        wrapperspb.Double(4.1),
				Attributes:    map[string]string{"language": "en", "format": "hardcover"},
				CatalogueCode: "FIC-GIB-0002",
				Available:     false,
				Reviews: []*libraryv1.Review{
					{Reader: "carol", Stars: 4, Text: "The sky above the port was worth the trip."},
				},
			}},
			{id: "the-left-hand-of-darkness", text: "The Left Hand of Darkness, by Ursula K. Le Guin.\n\nAn envoy on a winter world learns what a people can be.\n", book: &libraryv1.Book{
				Title:         "The Left Hand of Darkness",
				Author:        author("Ursula K. Le Guin", 1929, time.October, 21),
				Isbn:          "978-0441478125",
				Genre:         libraryv1.Genre_GENRE_FICTION,
				Tags:          []string{"classic", "sci-fi"},
				PageCount:     304,
				PriceCents:    1299,
				PublishTime:   date(1969, time.March, 1),
				ReadTime:      durationpb.New(10 * time.Hour),
				Rating:        wrapperspb.Double(4.4),
				Attributes:    map[string]string{"language": "en", "format": "paperback"},
				CatalogueCode: "FIC-LEG-0003",
				Available:     true,
			}},
			{id: "leaves-of-grass", text: "Leaves of Grass, by Walt Whitman.\n\nI celebrate myself, and sing myself,\nAnd what I assume you shall assume,\nFor every atom belonging to me as good belongs to you.\n", book: &libraryv1.Book{
				Title:         "Leaves of Grass",
				Author:        author("Walt Whitman", 1819, time.May, 31),
				Isbn:          "978-0486456768",
				Genre:         libraryv1.Genre_GENRE_POETRY,
				Tags:          []string{"classic", "poetry"},
				PageCount:     145,
				PriceCents:    599,
				PublishTime:   date(1855, time.July, 4),
				ReadTime:      durationpb.New(5 * time.Hour),
				Rating:        wrapperspb.Double(4.2),
				Attributes:    map[string]string{"language": "en", "format": "paperback", "public-domain": "true"},
				CatalogueCode: "POE-WHI-0004",
				Available:     true,
			}},
		}},
		{id: "2", theme: "science", books: []seedBook{
			{id: "cosmos", text: "Cosmos, by Carl Sagan.\n\nA tour of the universe and of the people who learned to see it.\n", book: &libraryv1.Book{
				Title:         "Cosmos",
				Author:        author("Carl Sagan", 1934, time.November, 9),
				Isbn:          "978-0345539434",
				Genre:         libraryv1.Genre_GENRE_SCIENCE,
				Tags:          []string{"astronomy", "popular-science"},
				PageCount:     365,
				PriceCents:    1799,
				PublishTime:   date(1980, time.October, 12),
				ReadTime:      durationpb.New(12 * time.Hour),
				Rating:        wrapperspb.Double(4.7),
				Attributes:    map[string]string{"language": "en", "format": "paperback"},
				CatalogueCode: "SCI-SAG-0001",
				Available:     true,
				Reviews: []*libraryv1.Review{
					{Reader: "dmitri", Stars: 5, Text: "Made me look up again."},
				},
			}},
			{id: "the-selfish-gene", text: "The Selfish Gene, by Richard Dawkins.\n\nEvolution told from the point of view of the gene.\n", book: &libraryv1.Book{
				Title:         "The Selfish Gene",
				Author:        author("Richard Dawkins", 1941, time.March, 26),
				Isbn:          "978-0198788607",
				Genre:         libraryv1.Genre_GENRE_SCIENCE,
				Tags:          []string{"biology", "evolution", "popular-science"},
				PageCount:     360,
				PriceCents:    1599,
				PublishTime:   date(1976, time.January, 1),
				ReadTime:      durationpb.New(11 * time.Hour),
				Rating:        wrapperspb.Double(4.0),
				Attributes:    map[string]string{"language": "en", "format": "paperback", "edition": "40th anniversary"},
				CatalogueCode: "SCI-DAW-0002",
				Available:     true,
			}},
			{id: "a-brief-history-of-time", text: "A Brief History of Time, by Stephen Hawking.\n\nFrom the big bang to black holes, with one equation.\n", book: &libraryv1.Book{
				Title:         "A Brief History of Time",
				Author:        author("Stephen Hawking", 1942, time.January, 8),
				Isbn:          "978-0553380163",
				Genre:         libraryv1.Genre_GENRE_SCIENCE,
				Tags:          []string{"physics", "cosmology", "popular-science"},
				PageCount:     212,
				PriceCents:    1899,
				PublishTime:   date(1988, time.April, 1),
				ReadTime:      durationpb.New(7 * time.Hour),
				Rating:        wrapperspb.Double(4.3),
				Attributes:    map[string]string{"language": "en", "format": "hardcover"},
				CatalogueCode: "SCI-HAW-0003",
				Available:     true,
				Reviews: []*libraryv1.Review{
					{Reader: "ada", Stars: 4, Text: "Brief it is not, but it is clear."},
					{Reader: "erin", Stars: 3, Text: "Lost me at imaginary time."},
				},
			}},
			{id: "the-structure-of-scientific-revolutions", text: "The Structure of Scientific Revolutions, by Thomas S. Kuhn.\n\nHow science changes its mind.\n", book: &libraryv1.Book{
				Title:         "The Structure of Scientific Revolutions",
				Author:        author("Thomas S. Kuhn", 1922, time.July, 18),
				Isbn:          "978-0226458120",
				Genre:         libraryv1.Genre_GENRE_HISTORY,
				Tags:          []string{"history-of-science", "philosophy"},
				PageCount:     264,
				PriceCents:    1150,
				PublishTime:   date(1962, time.January, 1),
				ReadTime:      durationpb.New(9 * time.Hour),
				Rating:        wrapperspb.Double(4.1),
				Attributes:    map[string]string{"language": "en", "format": "paperback"},
				CatalogueCode: "HIS-KUH-0004",
				Available:     true,
			}},
		}},
	}
}

// author returns an Author born on the given day.
func author(name string, year int, month time.Month, day int) *libraryv1.Author {
	return &libraryv1.Author{Name: name, Born: date(year, month, day)}
}

// date returns midnight UTC of the given day as a Timestamp.
func date(year int, month time.Month, day int) *timestamppb.Timestamp {
	return timestamppb.New(time.Date(year, month, day, 0, 0, 0, 0, time.UTC))
}
